using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Servables.Async;

/// <summary>The <see cref="IAsyncHandlerMetrics"/> each API hands its handler.</summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class AsyncHandlerMetrics(Meter meter, string apiName) : IAsyncHandlerMetrics
{
    private readonly ConcurrentDictionary<string, Counter<long>> _counters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Histogram<double>> _histograms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Gauge<double>> _gauges = new(StringComparer.Ordinal);

    public Meter Meter { get; } = meter;

    public void Increment(string name, long value = 1, params ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _counters.GetOrAdd(name, n => Meter.CreateCounter<long>(n)).Add(value, WithApi(tags));
    }

    public void Record(string name, double value, params ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _histograms.GetOrAdd(name, n => Meter.CreateHistogram<double>(n)).Record(value, WithApi(tags));
    }

    public void SetGauge(string name, double value, params ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _gauges.GetOrAdd(name, n => Meter.CreateGauge<double>(n)).Record(value, WithApi(tags));
    }

    private ReadOnlySpan<KeyValuePair<string, object?>> WithApi(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var all = new KeyValuePair<string, object?>[tags.Length + 1];
        all[0] = new("api", apiName);
        tags.CopyTo(all.AsSpan(1));
        return all;
    }
}
