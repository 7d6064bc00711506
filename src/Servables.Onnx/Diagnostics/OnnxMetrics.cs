using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Servables.Onnx;

/// <summary>The instruments of the "Servables.Onnx" meter, and its activity source.</summary>
/// <remarks>
/// One instance per meter factory (see <see cref="For"/>), or <see cref="Default"/> when there is no factory.
/// Per-run instruments are recorded only while something listens, so that an unobserved
/// <c>Run</c> pays one branch. Instruments are thread-safe.
/// </remarks>
internal sealed class OnnxMetrics
{
    public const string MeterName = OnnxDiagnostics.MeterName;

    public static readonly ActivitySource ActivitySource = new(OnnxDiagnostics.ActivitySourceName);

    private static readonly Lazy<OnnxMetrics> s_default = new(() => new OnnxMetrics(null));
    private static readonly ConditionalWeakTable<IMeterFactory, OnnxMetrics> s_byFactory = [];

    public OnnxMetrics(IMeterFactory? meterFactory)
    {
        // Without a factory the meter lives as long as the process, like the static activity source.
        Meter meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Runs = meter.CreateCounter<long>("servables.onnx.runs", "{run}", "Run calls, by servable and outcome (success, bad_input, error).");
        RunDuration = meter.CreateHistogram<double>("servables.onnx.run.duration", "s", "Time one Run call took, by servable.");
        SessionCreateDuration = meter.CreateHistogram<double>("servables.onnx.session.create.duration", "s", "Time to create an InferenceSession, by servable and execution provider.");
        WarmupDuration = meter.CreateHistogram<double>("servables.onnx.warmup.duration", "s", "Time the warm-up requests of a version took, by servable.");
        Sessions = meter.CreateUpDownCounter<long>("servables.onnx.sessions", "{session}", "Sessions alive now, by execution provider.");
    }

    /// <summary>The instruments of the meter created without a factory.</summary>
    public static OnnxMetrics Default => s_default.Value;

    public Counter<long> Runs { get; }

    public Histogram<double> RunDuration { get; }

    public Histogram<double> SessionCreateDuration { get; }

    public Histogram<double> WarmupDuration { get; }

    public UpDownCounter<long> Sessions { get; }

    /// <summary>The metrics for <paramref name="meterFactory"/>, one set per factory; <see cref="Default"/> when null.</summary>
    public static OnnxMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : s_byFactory.GetValue(meterFactory, static factory => new OnnxMetrics(factory));
}
