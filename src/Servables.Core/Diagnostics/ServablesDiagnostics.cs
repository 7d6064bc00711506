namespace Servables;

/// <summary>The names under which Servables.Core reports, for OpenTelemetry's <c>AddMeter</c> and <c>AddSource</c>.</summary>
/// <example><code>services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(ServablesDiagnostics.MeterName)).WithTracing(t => t.AddSource(ServablesDiagnostics.ActivitySourceName));</code></example>
public static class ServablesDiagnostics
{
    /// <summary>The meter of the manager, the handles and the batch scheduler: <c>Servables.Core</c>.</summary>
    public const string MeterName = "Servables.Core";

    /// <summary>The activity source of loads and unloads: <c>Servables.Core</c>.</summary>
    public const string ActivitySourceName = "Servables.Core";
}
