namespace Servables.Torch;

/// <summary>The names under which Servables.Torch reports, for OpenTelemetry's <c>AddMeter</c> and <c>AddSource</c>.</summary>
public static class TorchDiagnostics
{
    /// <summary>The meter of the Torch servables (forward durations, batches): <c>Servables.Torch</c>.</summary>
    public const string MeterName = "Servables.Torch";

    /// <summary>The activity source of module loads and forwards: <c>Servables.Torch</c>.</summary>
    public const string ActivitySourceName = "Servables.Torch";
}
