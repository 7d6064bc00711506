namespace Servables.Onnx;

/// <summary>The names under which Servables.Onnx reports, for OpenTelemetry's <c>AddMeter</c> and <c>AddSource</c>.</summary>
public static class OnnxDiagnostics
{
    /// <summary>The meter of the ONNX servables (run durations, batches): <c>Servables.Onnx</c>.</summary>
    public const string MeterName = "Servables.Onnx";

    /// <summary>The activity source of session loads and runs: <c>Servables.Onnx</c>.</summary>
    public const string ActivitySourceName = "Servables.Onnx";
}
