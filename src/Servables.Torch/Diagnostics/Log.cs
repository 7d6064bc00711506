using Microsoft.Extensions.Logging;

namespace Servables.Torch;

/// <summary>The log messages of Servables.Torch (event ids 400–499).</summary>
internal static partial class Log
{
    [LoggerMessage(400, LogLevel.Debug, "Loading {ServableId} ({ModelKind}) from {ModelPath} on {Device}")]
    public static partial void ModuleLoading(ILogger logger, ServableId servableId, TorchModelKind modelKind, string modelPath, string device);

    [LoggerMessage(401, LogLevel.Information, "{ServableId} ({ModelKind}) loaded on {Device} in {ElapsedMs:F1} ms")]
    public static partial void ModuleLoaded(ILogger logger, ServableId servableId, TorchModelKind modelKind, string device, double elapsedMs);

    [LoggerMessage(402, LogLevel.Warning, "Device Auto: CUDA is not usable for {ServableId} ({Reason}); running on CPU")]
    public static partial void CudaFallbackToCpu(ILogger logger, ServableId servableId, string reason);

    [LoggerMessage(403, LogLevel.Information, "Warm-up of {ServableId} ran {Runs} request(s) in {ElapsedMs:F1} ms")]
    public static partial void WarmupCompleted(ILogger logger, ServableId servableId, int runs, double elapsedMs);

    [LoggerMessage(404, LogLevel.Warning, "Loading {ServableId} from {ModelPath} failed")]
    public static partial void ModuleLoadFailed(ILogger logger, ServableId servableId, string modelPath, Exception exception);

    [LoggerMessage(405, LogLevel.Warning, "Warm-up of {ServableId} failed; the version does not become available")]
    public static partial void WarmupFailed(ILogger logger, ServableId servableId, Exception exception);

    [LoggerMessage(406, LogLevel.Debug, "Module of {ServableId} disposed")]
    public static partial void ModuleDisposed(ILogger logger, ServableId servableId);

    [LoggerMessage(407, LogLevel.Debug, "The tensors of TorchScript module {ServableId} could not all be emptied before disposal; what is left goes with the module")]
    public static partial void ScriptTensorsNotReleased(ILogger logger, ServableId servableId, Exception exception);

    [LoggerMessage(408, LogLevel.Information, "Batching ForwardAsync calls of {ServableId}: MaxBatchSize {MaxBatchSize}, BatchTimeout {BatchTimeoutMs} ms, AllowedBatchSizes [{AllowedBatchSizes}], {BatchWorkers} worker(s), shared scheduler {SharedScheduler}")]
    public static partial void BatchingStarted(ILogger logger, ServableId servableId, int maxBatchSize, double batchTimeoutMs, string allowedBatchSizes, int batchWorkers, bool sharedScheduler);

    [LoggerMessage(409, LogLevel.Debug, "A batched forward of {ServableId} failed for its {Calls} call(s) ({Rows} row(s)); the other calls of the batch are unaffected")]
    public static partial void BatchedForwardFailed(ILogger logger, ServableId servableId, int calls, int rows, Exception exception);

    [LoggerMessage(410, LogLevel.Debug, "The batch queue of {ServableId} drained: every call queued before the unload ran")]
    public static partial void BatchQueueDrained(ILogger logger, ServableId servableId);
}
