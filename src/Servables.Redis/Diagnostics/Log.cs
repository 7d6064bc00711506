using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The log messages of Servables.Redis (event ids 500–599).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(500, LogLevel.Information, "Redis result store of async API {ApiName}: keys under {Namespace}, this host is consumer {Consumer}")]
    public static partial void StoreOpened(ILogger logger, string apiName, string @namespace, string consumer);

    [LoggerMessage(501, LogLevel.Warning, "Redis result store of async API {ApiName} could not renew this host's hold on {Count} request(s); another host takes them over if Redis stays out of reach for {VisibilityTimeout}")]
    public static partial void RenewFailed(ILogger logger, string apiName, int count, TimeSpan visibilityTimeout, Exception exception);

    [LoggerMessage(502, LogLevel.Information, "Redis result store of async API {ApiName}: took over {Count} request(s) that another host held for longer than {VisibilityTimeout} without a sign of life")]
    public static partial void RequestsTakenOver(ILogger logger, string apiName, int count, TimeSpan visibilityTimeout);

    [LoggerMessage(503, LogLevel.Warning, "Redis result store of async API {ApiName}: request {RequestId} failed without running again: {Reason}")]
    public static partial void RequestNotDelivered(ILogger logger, string apiName, string requestId, string reason);

    [LoggerMessage(504, LogLevel.Warning, "Redis result store of async API {ApiName} lost its connection to {Endpoint} ({FailureType}); it reconnects in the background")]
    public static partial void ConnectionLost(ILogger logger, string apiName, string endpoint, string failureType, Exception? exception);

    [LoggerMessage(506, LogLevel.Debug, "Redis result store of async API {ApiName}: handed request {RequestId} back to the shared queue")]
    public static partial void RequestHandedBack(ILogger logger, string apiName, string requestId);

    [LoggerMessage(507, LogLevel.Warning, "Redis result store of async API {ApiName} could not hand request {RequestId} back to the shared queue; another host takes it over after {VisibilityTimeout}")]
    public static partial void HandBackFailed(ILogger logger, string apiName, string requestId, TimeSpan visibilityTimeout, Exception exception);

    [LoggerMessage(508, LogLevel.Warning, "Redis result store of async API {ApiName}: {Count} request(s) this host was running are no longer its own (another host took them over after this one was silent for longer than {VisibilityTimeout}, or finished them); it stops renewing them, and the first outcome stored is kept")]
    public static partial void HoldsLost(ILogger logger, string apiName, int count, TimeSpan visibilityTimeout);

    [LoggerMessage(505, LogLevel.Information, "Redis result store of async API {ApiName} is connected to {Endpoint} again")]
    public static partial void ConnectionRestored(ILogger logger, string apiName, string endpoint);
}
