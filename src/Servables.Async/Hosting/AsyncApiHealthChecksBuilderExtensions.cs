using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Servables.Async;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Health checks for the async APIs registered with <c>AddAsyncHandler</c>.</summary>
public static class AsyncApiHealthChecksBuilderExtensions
{
    /// <summary>The tags each async API's check gets when none are given: <c>servables</c>, <c>async</c>, <c>ready</c>.</summary>
    public static readonly IReadOnlyList<string> DefaultTags = ["servables", "async", "ready"];

    /// <summary>
    /// Adds one health check per registered async API, named <c>async-api:{name}</c>: Unhealthy (or
    /// <paramref name="failureStatus"/>) when the API is not running (not started, stopping, stopped), a lane
    /// has ended, or its store does not answer a read within <paramref name="storeProbeTimeout"/>; Degraded
    /// when its queue is 90% full or more; Healthy otherwise. Each result's data hold <c>queue_depth</c>,
    /// <c>capacity</c>, <c>lanes</c>, <c>lanes_alive</c> and <c>store</c>.
    /// </summary>
    /// <remarks>
    /// The APIs are those registered in the service collection when the health check options are first
    /// built, so this may be called before or after <c>AddAsyncHandler</c>. Calling it again adds no
    /// second check for an API. The checks report readiness (tagged <c>ready</c> by default): an API that
    /// has not started or is stopping is not ready. Map a readiness endpoint with
    /// <c>Predicate = c =&gt; c.Tags.Contains("ready")</c>, and give liveness its own tags if these
    /// checks should also count there.
    /// </remarks>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="tags">The checks' tags; null for <see cref="DefaultTags"/>.</param>
    /// <param name="failureStatus">What a failing check reports; null for <see cref="HealthStatus.Unhealthy"/>.</param>
    /// <param name="storeProbeTimeout">How long the store may take to answer the probe; null for 5 seconds.</param>
    /// <returns>The builder, for chaining.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="storeProbeTimeout"/> is not positive.</exception>
    public static IHealthChecksBuilder AddAsyncApis(this IHealthChecksBuilder builder, IEnumerable<string>? tags = null, HealthStatus? failureStatus = null, TimeSpan? storeProbeTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        TimeSpan timeout = storeProbeTimeout ?? TimeSpan.FromSeconds(5);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero, nameof(storeProbeTimeout));
        string[] checkTags = [.. tags ?? DefaultTags];
        builder.Services.AddSingleton<IConfigureOptions<HealthCheckServiceOptions>>(services => new ConfigureOptions<HealthCheckServiceOptions>(options =>
        {
            foreach (string apiName in services.GetService<AsyncApiRegistry>()?.Handlers.Keys ?? Enumerable.Empty<string>())
            {
                string name = "async-api:" + apiName;
                if (options.Registrations.Any(r => r.Name == name))
                {
                    continue;
                }

                options.Registrations.Add(new HealthCheckRegistration(
                    name,
                    sp => new AsyncApiHealthCheck(sp.GetRequiredKeyedService<AsyncApi>(apiName), timeout),
                    failureStatus,
                    checkTags));
            }
        }));
        return builder;
    }
}
