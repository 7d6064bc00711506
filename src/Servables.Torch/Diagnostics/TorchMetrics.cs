using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace Servables.Torch;

/// <summary>The instruments of the "Servables.Torch" meter, and its activity source.</summary>
/// <remarks>
/// One instance per meter factory (see <see cref="For"/>), or <see cref="Default"/> when there is no factory.
/// Per-call instruments are recorded only while something listens, so that an unobserved
/// <c>Forward</c> pays one branch. Instruments are thread-safe.
/// </remarks>
internal sealed class TorchMetrics
{
    public const string MeterName = TorchDiagnostics.MeterName;

    public static readonly ActivitySource ActivitySource = new(TorchDiagnostics.ActivitySourceName);

    private static readonly Lazy<TorchMetrics> s_default = new(() => new TorchMetrics(null));
    private static readonly ConditionalWeakTable<IMeterFactory, TorchMetrics> s_byFactory = [];

    public TorchMetrics(IMeterFactory? meterFactory)
    {
        // Without a factory the meter lives as long as the process, like the static activity source.
        Meter meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Forwards = meter.CreateCounter<long>("servables.torch.forwards", "{call}", "Forward calls, by servable and outcome (success, bad_input, error).");
        ForwardDuration = meter.CreateHistogram<double>("servables.torch.forward.duration", "s", "Time one Forward call took, by servable.");
        LoadDuration = meter.CreateHistogram<double>("servables.torch.load.duration", "s", "Time to load a module (read, place on its device), by servable and device.");
        WarmupDuration = meter.CreateHistogram<double>("servables.torch.warmup.duration", "s", "Time the warm-up requests of a version took, by servable.");
        Modules = meter.CreateUpDownCounter<long>("servables.torch.modules", "{module}", "Modules alive now, by device.");
    }

    /// <summary>The instruments of the meter created without a factory.</summary>
    public static TorchMetrics Default => s_default.Value;

    public Counter<long> Forwards { get; }

    public Histogram<double> ForwardDuration { get; }

    public Histogram<double> LoadDuration { get; }

    public Histogram<double> WarmupDuration { get; }

    public UpDownCounter<long> Modules { get; }

    /// <summary>The metrics for <paramref name="meterFactory"/>, one set per factory; <see cref="Default"/> when null.</summary>
    public static TorchMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : s_byFactory.GetValue(meterFactory, static factory => new TorchMetrics(factory));
}
