using Microsoft.Extensions.Logging;

namespace Servables.Onnx;

/// <summary>The log messages of Servables.Onnx (event ids 300–399).</summary>
internal static partial class Log
{
    [LoggerMessage(300, LogLevel.Debug, "Creating an ONNX Runtime session for {ServableId} from {ModelPath} on {ExecutionProvider}")]
    public static partial void SessionCreating(ILogger logger, ServableId servableId, string modelPath, OnnxExecutionProvider executionProvider);

    [LoggerMessage(301, LogLevel.Information, "ONNX Runtime session for {ServableId} created on {ExecutionProvider} in {ElapsedMs:F1} ms: {Signature}")]
    public static partial void SessionCreated(ILogger logger, ServableId servableId, OnnxExecutionProvider executionProvider, double elapsedMs, string signature);

    [LoggerMessage(302, LogLevel.Warning, "Execution provider Auto: CUDA is not usable for {ServableId} ({Reason}); running on CPU")]
    public static partial void CudaFallbackToCpu(ILogger logger, ServableId servableId, string reason);

    [LoggerMessage(303, LogLevel.Information, "Warm-up of {ServableId} ran {Runs} request(s) in {ElapsedMs:F1} ms")]
    public static partial void WarmupCompleted(ILogger logger, ServableId servableId, int runs, double elapsedMs);

    [LoggerMessage(304, LogLevel.Warning, "Creating the ONNX Runtime session for {ServableId} from {ModelPath} failed")]
    public static partial void SessionCreateFailed(ILogger logger, ServableId servableId, string modelPath, Exception exception);

    [LoggerMessage(305, LogLevel.Warning, "Warm-up of {ServableId} failed; the version does not become available")]
    public static partial void WarmupFailed(ILogger logger, ServableId servableId, Exception exception);

    [LoggerMessage(306, LogLevel.Debug, "ONNX Runtime session of {ServableId} disposed")]
    public static partial void SessionDisposed(ILogger logger, ServableId servableId);

    [LoggerMessage(307, LogLevel.Warning, "The session of {ServableId} gets its own thread pools: ONNX Runtime's environment was created before Servables could give it shared pools (see OnnxEnvironment)")]
    public static partial void SharedThreadPoolsUnavailable(ILogger logger, ServableId servableId);
}
