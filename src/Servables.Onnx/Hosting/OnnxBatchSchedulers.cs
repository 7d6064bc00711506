using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Onnx;

/// <summary>One batch scheduler per ONNX servable of a host, shared by its versions so that an old and a new version interleave during a swap.</summary>
/// <remarks>A singleton of the host's container, which disposes it (stopping the schedulers once what they hold has run). Thread-safe.</remarks>
internal sealed class OnnxBatchSchedulers : IAsyncDisposable, IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<BatchScheduler<OnnxBatchTask>>> _byName = new(StringComparer.Ordinal);

    /// <summary>The scheduler of servable <paramref name="name"/>, made with <paramref name="workers"/> workers the first time.</summary>
    public BatchScheduler<OnnxBatchTask> For(string name, int workers, IServiceProvider services) =>
        _byName.GetOrAdd(name, _ => new Lazy<BatchScheduler<OnnxBatchTask>>(() => new BatchScheduler<OnnxBatchTask>(
            new BatchSchedulerOptions { BatchWorkers = workers },
            services.GetService<ILoggerFactory>(),
            services.GetService<IMeterFactory>()))).Value;

    /// <summary>For a container disposed synchronously (<c>ServiceProvider.Dispose</c>): the same as <see cref="DisposeAsync"/>, blocking until it is done.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        foreach (Lazy<BatchScheduler<OnnxBatchTask>> scheduler in _byName.Values.Where(s => s.IsValueCreated))
        {
            await scheduler.Value.DisposeAsync().ConfigureAwait(false);
        }
    }
}
