using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Reports whether each servable serves: Healthy, Degraded (a newer aspired version failed while an older one serves) or Unhealthy (none serves).</summary>
/// <remarks>
/// Covers every servable registered with <c>AddStoragePathServable</c> (also before a version of it
/// was found) and every other servable the manager knows. The result is the worst of them; its data
/// has one entry per servable, named after it, saying why. Thread-safe: it reads a copy of the
/// manager's state.
/// </remarks>
internal sealed class ServablesHealthCheck(AspiredVersionsManager manager, IOptions<ServableStorageOptions> storage) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        Dictionary<string, VersionReport[]> versions = manager.DescribeVersions();
        var names = new SortedSet<string>(versions.Keys, StringComparer.Ordinal);
        foreach (StoragePathRegistration registration in storage.Value.Registrations)
        {
            names.Add(registration.Servable.Name);
        }

        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var unhealthy = new List<string>();
        var degraded = new List<string>();
        foreach (string name in names)
        {
            (HealthStatus status, string reason) = Evaluate(versions.GetValueOrDefault(name) ?? []);
            data[name] = $"{status}: {reason}";
            (status == HealthStatus.Unhealthy ? unhealthy : status == HealthStatus.Degraded ? degraded : null)?.Add($"'{name}' ({reason})");
        }

        HealthCheckResult result = unhealthy.Count > 0
            ? new HealthCheckResult(context.Registration.FailureStatus, $"Not serving: {string.Join("; ", unhealthy)}.", data: data)
            : degraded.Count > 0
                ? HealthCheckResult.Degraded($"Serving an older version: {string.Join("; ", degraded)}.", data: data)
                : HealthCheckResult.Healthy(names.Count == 0 ? "No servables are registered." : $"All {names.Count} servable(s) serve.", data);
        return Task.FromResult(result);
    }

    private static (HealthStatus Status, string Reason) Evaluate(VersionReport[] versions)
    {
        VersionReport? newestServing = versions.LastOrDefault(v => v.State == HarnessState.Available);
        if (newestServing is null)
        {
            if (versions.Length == 0)
            {
                return (HealthStatus.Unhealthy, "no version found yet");
            }

            VersionReport? failed = versions.LastOrDefault(v => v.State == HarnessState.Error);
            return failed is not null
                ? (HealthStatus.Unhealthy, $"no version serves; version {Number(failed.Id)} failed: {failed.Error?.Message}")
                : (HealthStatus.Unhealthy, $"no version serves yet; {string.Join(", ", versions.Select(v => $"version {Number(v.Id)} is {v.State}"))}");
        }

        VersionReport? newerFailed = versions.LastOrDefault(v => v.State == HarnessState.Error && v.IsAspired && v.Id.Version > newestServing.Id.Version);
        return newerFailed is not null
            ? (HealthStatus.Degraded, $"version {Number(newestServing.Id)} serves, but version {Number(newerFailed.Id)} failed: {newerFailed.Error?.Message}")
            : (HealthStatus.Healthy, $"version {Number(newestServing.Id)} serves");
    }

    private static string Number(ServableId id) => id.Version.ToString(CultureInfo.InvariantCulture);
}
