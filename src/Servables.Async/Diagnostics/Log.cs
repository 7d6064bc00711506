using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The log messages of Servables.Async (event ids 200–299).</summary>
internal static partial class Log
{
    [LoggerMessage(200, LogLevel.Information, "Async API {ApiName} started: {Workers} worker(s) × {Concurrency}, queue {Capacity}, store {Store}")]
    public static partial void ApiStarted(ILogger logger, string apiName, int workers, int concurrency, int capacity, string store);

    [LoggerMessage(201, LogLevel.Debug, "Request accepted ({ContentType}, {Bytes} bytes)")]
    public static partial void RequestAccepted(ILogger logger, string contentType, int bytes);

    [LoggerMessage(202, LogLevel.Debug, "Request started after {QueueWaitMs:F1} ms in the queue")]
    public static partial void RequestStarted(ILogger logger, double queueWaitMs);

    [LoggerMessage(203, LogLevel.Debug, "Request completed in {ElapsedMs:F1} ms")]
    public static partial void RequestCompleted(ILogger logger, double elapsedMs);

    [LoggerMessage(204, LogLevel.Warning, "Request failed: {Error}")]
    public static partial void RequestFailed(ILogger logger, string error);

    [LoggerMessage(205, LogLevel.Error, "The handler of async API {ApiName} threw")]
    public static partial void HandlerThrew(ILogger logger, string apiName, Exception exception);

    [LoggerMessage(206, LogLevel.Information, "Async API {ApiName} recovered {Count} request(s) left queued or in progress by an earlier process; they run again")]
    public static partial void RequestsRecovered(ILogger logger, string apiName, int count);

    [LoggerMessage(207, LogLevel.Error, "The result store of async API {ApiName} failed; the worker goes on")]
    public static partial void StoreFailed(ILogger logger, string apiName, Exception exception);

    [LoggerMessage(208, LogLevel.Information, "Async API {ApiName} stopping: no new requests; finishing {Queued} queued request(s) within the host's shutdown timeout")]
    public static partial void ApiStopping(ILogger logger, string apiName, int queued);

    [LoggerMessage(209, LogLevel.Warning, "Async API {ApiName} stopped before request {RequestId} finished; {Outcome}")]
    public static partial void RequestAbandoned(ILogger logger, string apiName, string requestId, string outcome);

    [LoggerMessage(210, LogLevel.Debug, "Async API {ApiName} removed {Count} expired result(s)")]
    public static partial void ExpiredRemoved(ILogger logger, string apiName, int count);

    [LoggerMessage(211, LogLevel.Debug, "Async API {ApiName} rejected a request: {Reason}")]
    public static partial void SubmitRejected(ILogger logger, string apiName, string reason);

    [LoggerMessage(212, LogLevel.Warning, "Async API {ApiName} abandoned request {RequestId} at shutdown: {Outcome}")]
    public static partial void RequestAbandonedAfterGrace(ILogger logger, string apiName, string requestId, string outcome);

    [LoggerMessage(213, LogLevel.Warning, "Async API {ApiName} stopped with {Lanes} lane(s) still in a handler that ignored cancellation; its handler and result store are disposed when they return, not before")]
    public static partial void DisposalDeferred(ILogger logger, string apiName, int lanes);

    [LoggerMessage(214, LogLevel.Warning, "The result store of async API {ApiName} failed to {What} request {RequestId}; retry {Attempt} of {Retries} in {DelayMs} ms")]
    public static partial void StoreRetrying(ILogger logger, string apiName, string requestId, string what, int attempt, int retries, double delayMs, Exception exception);

    [LoggerMessage(215, LogLevel.Error, "Async API {ApiName} could not store the outcome of request {RequestId}; it is reported failed in this process: {Error}")]
    public static partial void OutcomeNotStored(ILogger logger, string apiName, string requestId, string error, Exception? exception);

    [LoggerMessage(216, LogLevel.Warning, "The result store of async API {ApiName} could not mark request {RequestId} in progress; it runs anyway, and the store reads it queued until its outcome is stored")]
    public static partial void StartNotStored(ILogger logger, string apiName, string requestId, Exception exception);

    [LoggerMessage(217, LogLevel.Error, "The batch handler of async API {ApiName} threw; the {Count} request(s) of its batch fail")]
    public static partial void BatchHandlerThrew(ILogger logger, string apiName, int count, Exception exception);

    [LoggerMessage(218, LogLevel.Error, "The batch handler of async API {ApiName} failed request {RequestId}")]
    public static partial void BatchRequestFailed(ILogger logger, string apiName, string requestId, Exception exception);

    [LoggerMessage(219, LogLevel.Error, "The batch handler of async API {ApiName} returned {Results} result(s) for {Count} request(s); every request of the batch fails")]
    public static partial void BatchResultsMiscounted(ILogger logger, string apiName, string results, int count);

    [LoggerMessage(220, LogLevel.Information, "Async API {ApiName} runs its handler on batches: up to {MaxBatchSize} request(s) each, batch timeout {BatchTimeout}, {Workers} batch(es) at once, {Stage} request(s) taken from the queue at most")]
    public static partial void BatchingStarted(ILogger logger, string apiName, int maxBatchSize, TimeSpan batchTimeout, int workers, int stage);
}
