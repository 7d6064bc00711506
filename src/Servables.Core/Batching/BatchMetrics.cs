using System.Diagnostics.Metrics;

namespace Servables;

/// <summary>The batching instruments of the "Servables.Core" meter.</summary>
/// <remarks>Instruments are thread-safe.</remarks>
internal sealed class BatchMetrics
{
    private static readonly Lazy<BatchMetrics> Shared = new(() => new BatchMetrics(new Meter(CoreMetrics.MeterName)));

    private BatchMetrics(Meter meter)
    {
        BatchSize = meter.CreateHistogram<int>("servables.batch.size", "{example}", "Size of each batch run (the sum of its tasks' sizes), by queue.");
        Padding = meter.CreateHistogram<int>("servables.batch.padding", "{example}", "Rows a batch was padded with to reach an allowed batch size, by queue.");
        QueueDelay = meter.CreateHistogram<double>("servables.batch.queue_delay", "s", "Time from a task's schedule to its batch starting, by queue.");
        Rejections = meter.CreateCounter<long>("servables.batch.rejections", "{task}", "Tasks refused because their queue was full, by queue.");
    }

    public Histogram<int> BatchSize { get; }

    public Histogram<int> Padding { get; }

    public Histogram<double> QueueDelay { get; }

    public Counter<long> Rejections { get; }

    /// <summary>The instruments on the factory's meter, or on a process-wide one when there is no factory.</summary>
    public static BatchMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Shared.Value : new BatchMetrics(meterFactory.Create(CoreMetrics.MeterName));
}
