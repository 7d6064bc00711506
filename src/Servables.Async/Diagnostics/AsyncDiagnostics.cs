namespace Servables.Async;

/// <summary>The names under which Servables.Async reports, for OpenTelemetry's <c>AddMeter</c>.</summary>
public static class AsyncDiagnostics
{
    /// <summary>The meter of the async APIs (queue depth, latency, outcomes, rejections): <c>Servables.Async</c>.</summary>
    public const string MeterName = "Servables.Async";

    /// <summary>The meter handlers record on through their <see cref="IAsyncHandlerMetrics"/>: <c>Servables.Async.Handlers</c>.</summary>
    public const string HandlerMeterName = "Servables.Async.Handlers";
}
