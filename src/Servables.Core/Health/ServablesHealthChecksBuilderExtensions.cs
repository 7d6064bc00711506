using Microsoft.Extensions.Diagnostics.HealthChecks;
using Servables;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the health of servables to <c>AddHealthChecks()</c>.</summary>
public static class ServablesHealthChecksBuilderExtensions
{
    /// <summary>The tags <see cref="AddServables"/> gives its check when none are passed: map readiness probes to <c>"ready"</c>.</summary>
    public static IReadOnlyList<string> DefaultTags { get; } = ["servables", "ready"];

    /// <summary>
    /// Adds one check over every servable of the <see cref="AspiredVersionsManager"/> registered with
    /// <c>AddServables</c>: Healthy when each one has a version that serves; Degraded when one serves
    /// an older version because a newer aspired version failed to load (the data names the error);
    /// <paramref name="failureStatus"/> (Unhealthy by default) when one has no version that serves,
    /// including while the first version is still loading. It is a readiness check: a process whose
    /// models are loading is alive but not ready, so keep it off liveness probes (filter by tag).
    /// Needs <c>services.AddServables()</c>.
    /// </summary>
    /// <param name="builder">The builder from <c>services.AddHealthChecks()</c>.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">What to report when a servable does not serve; null for Unhealthy.</param>
    /// <param name="tags">The check's tags; null for <see cref="DefaultTags"/>.</param>
    /// <returns>The builder, for chaining.</returns>
    public static IHealthChecksBuilder AddServables(
        this IHealthChecksBuilder builder,
        string name = "servables",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => ActivatorUtilities.CreateInstance<ServablesHealthCheck>(sp),
            failureStatus,
            tags ?? DefaultTags));
    }
}
