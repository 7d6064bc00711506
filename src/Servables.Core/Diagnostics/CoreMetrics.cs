using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Servables;

/// <summary>The instruments of the "Servables.Core" meter, and its activity source.</summary>
/// <remarks>Instruments are thread-safe.</remarks>
internal sealed class CoreMetrics : IDisposable
{
    public const string MeterName = ServablesDiagnostics.MeterName;

    public static readonly ActivitySource ActivitySource = new(ServablesDiagnostics.ActivitySourceName);

    private readonly Meter _meter;
    private readonly bool _ownsMeter;

    public CoreMetrics(IMeterFactory? meterFactory, Func<int> availableVersions)
    {
        if (meterFactory is null)
        {
            _meter = new Meter(MeterName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(MeterName);
        }

        Loads = _meter.CreateCounter<long>("servables.loads", "{load}", "Completed loads, by servable and outcome (success, error, timeout, cancelled).");
        LoadDuration = _meter.CreateHistogram<double>("servables.load.duration", "s", "Time from a load's start to Available or error, retries included.");
        Unloads = _meter.CreateCounter<long>("servables.unloads", "{unload}", "Completed unloads, by servable and outcome.");
        UnloadDuration = _meter.CreateHistogram<double>("servables.unload.duration", "s", "Time a loader's unload took.");
        HandleAcquisitions = _meter.CreateCounter<long>("servables.handle.acquisitions", "{handle}", "Handles handed out, by servable.");
        _meter.CreateObservableGauge("servables.available_versions", availableVersions, "{version}", "Versions available now, across servables.");
    }

    public Counter<long> Loads { get; }

    public Histogram<double> LoadDuration { get; }

    public Counter<long> Unloads { get; }

    public Histogram<double> UnloadDuration { get; }

    public Counter<long> HandleAcquisitions { get; }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
