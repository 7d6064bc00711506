using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Servables.Async;

/// <summary>The instruments of the "Servables.Async" meter, shared by every API of a container.</summary>
/// <remarks>A DI singleton. Thread-safe.</remarks>
internal sealed class AsyncMetrics : IDisposable
{
    public const string MeterName = AsyncDiagnostics.MeterName;
    public const string HandlerMeterName = AsyncDiagnostics.HandlerMeterName;

    private readonly ConcurrentDictionary<string, AsyncApi> _apis = new(StringComparer.Ordinal);
    private readonly Meter _meter;
    private readonly bool _ownsMeters;

    public AsyncMetrics(IMeterFactory? meterFactory = null)
    {
        _ownsMeters = meterFactory is null;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        HandlerMeter = meterFactory?.Create(HandlerMeterName) ?? new Meter(HandlerMeterName);
        InFlight = _meter.CreateUpDownCounter<int>("servables.async.in_flight", "{request}", "Requests a handler is running now.");
        QueueWait = _meter.CreateHistogram<double>("servables.async.queue.wait", "s", "Time from submit to the start of the handler.");
        HandleDuration = _meter.CreateHistogram<double>("servables.async.handle.duration", "s", "Time the handler took, decoding included.");
        Outcomes = _meter.CreateCounter<long>("servables.async.requests", "{request}", "Finished requests, by API and status (completed, failed).");
        Rejections = _meter.CreateCounter<long>("servables.async.rejections", "{request}", "Submits refused, by API and reason (queue_full, invalid).");
        _meter.CreateObservableGauge("servables.async.queue.depth", ObserveQueueDepth, "{request}", "Requests waiting in this process's queue, by API (with a store shared by many hosts: those this host took and has not started).");
    }

    public Meter HandlerMeter { get; }

    public UpDownCounter<int> InFlight { get; }

    public Histogram<double> QueueWait { get; }

    public Histogram<double> HandleDuration { get; }

    public Counter<long> Outcomes { get; }

    public Counter<long> Rejections { get; }

    public void Register(AsyncApi api) => _apis[api.ApiName] = api;

    public void Dispose()
    {
        if (_ownsMeters)
        {
            _meter.Dispose();
            HandlerMeter.Dispose();
        }
    }

    private IEnumerable<Measurement<int>> ObserveQueueDepth() =>
        _apis.Values.Select(api => new Measurement<int>(api.QueueDepth, new KeyValuePair<string, object?>("api", api.ApiName)));
}
