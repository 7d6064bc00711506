using System.Diagnostics.Metrics;

namespace Servables.Async;

/// <summary>A handler's own metrics: counters, histograms and gauges on the "Servables.Async.Handlers" meter, tagged with the API name.</summary>
/// <remarks>Instruments are created on first use and cached by name. Thread-safe.</remarks>
public interface IAsyncHandlerMetrics
{
    /// <summary>The meter the instruments live on, for instruments this interface does not cover.</summary>
    Meter Meter { get; }

    /// <summary>Adds <paramref name="value"/> to the counter <paramref name="name"/>.</summary>
    void Increment(string name, long value = 1, params ReadOnlySpan<KeyValuePair<string, object?>> tags);

    /// <summary>Records <paramref name="value"/> in the histogram <paramref name="name"/>.</summary>
    void Record(string name, double value, params ReadOnlySpan<KeyValuePair<string, object?>> tags);

    /// <summary>Sets the gauge <paramref name="name"/> to <paramref name="value"/>.</summary>
    void SetGauge(string name, double value, params ReadOnlySpan<KeyValuePair<string, object?>> tags);
}
