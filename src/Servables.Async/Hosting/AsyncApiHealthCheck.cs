using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Servables.Async;

/// <summary>The health of one async API: its lanes, its queue's fill and its store.</summary>
/// <remarks>
/// Unhealthy (the registration's failure status) when the API is not running (not started yet, stopping or
/// stopped), when a lane has ended, or when the store does not answer a read of an unknown id within the
/// probe timeout; Degraded when the queue holds <see cref="DegradedQueueFraction"/> of its capacity or more;
/// Healthy otherwise. With a store shared by many hosts (<see cref="ISharedAsyncResultStore"/>) the probe reads the
/// shared queue's length, and that is the depth. The data always carry <c>queue_depth</c>, <c>capacity</c>, <c>lanes</c>
/// and <c>lanes_alive</c>. Thread-safe.
/// </remarks>
internal sealed class AsyncApiHealthCheck(AsyncApi api, TimeSpan storeProbeTimeout) : IHealthCheck
{
    /// <summary>From how full a queue reads Degraded.</summary>
    public const double DegradedQueueFraction = 0.9;

    // Well formed, never made by the API (made ids are base64url, which has no '.'), so it reads as absent.
    private const string ProbeId = "servables.health-probe";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        int depth = api.QueueDepth;
        int alive = api.LanesAlive;
        var data = new Dictionary<string, object>
        {
            ["queue_depth"] = depth,
            ["capacity"] = api.QueueCapacity,
            ["lanes"] = api.LaneCount,
            ["lanes_alive"] = alive,
            ["store"] = api.Store.GetType().Name,
        };
        HealthStatus failure = context.Registration.FailureStatus;
        if (!api.IsRunning)
        {
            return new HealthCheckResult(failure, $"Async API '{api.ApiName}' is not running (not started yet, stopping or stopped).", data: data);
        }

        if (alive < api.LaneCount)
        {
            return new HealthCheckResult(failure, $"Async API '{api.ApiName}' has {alive} of its {api.LaneCount} lanes running.", data: data);
        }

        try
        {
            if (api.Store is ISharedAsyncResultStore shared)
            {
                // The queue every host shares is what fills; what this host took is at most a few lanes' worth.
                depth = (int)Math.Min(int.MaxValue, await shared.CountWaitingAsync(cancellationToken).AsTask().WaitAsync(storeProbeTimeout, api.Time, cancellationToken).ConfigureAwait(false));
                data["queue_depth"] = depth;
            }
            else
            {
                await api.Store.GetAsync(ProbeId, includePayload: false, cancellationToken).AsTask().WaitAsync(storeProbeTimeout, api.Time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (TimeoutException)
        {
            return new HealthCheckResult(failure, $"The result store of async API '{api.ApiName}' did not answer within {storeProbeTimeout}.", data: data);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(failure, $"The result store of async API '{api.ApiName}' failed: {ex.GetType().Name}: {ex.Message}", ex, data);
        }

        if (depth >= DegradedQueueFraction * api.QueueCapacity)
        {
            return HealthCheckResult.Degraded($"The queue of async API '{api.ApiName}' is nearly full: {depth} of {api.QueueCapacity}.", data: data);
        }

        return HealthCheckResult.Healthy($"Async API '{api.ApiName}' is running: {depth} of {api.QueueCapacity} queued.", data);
    }
}
