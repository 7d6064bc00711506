using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Torch;

/// <summary>One batch scheduler per Torch servable of a host, shared by its versions so that an old and a new version interleave during a swap.</summary>
/// <remarks>A singleton of the host's container, which disposes it (stopping the schedulers once what they hold has run). Thread-safe.</remarks>
internal sealed class TorchBatchSchedulers : IAsyncDisposable, IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<BatchScheduler<TorchBatchTask>>> _byName = new(StringComparer.Ordinal);

    /// <summary>The scheduler of servable <paramref name="name"/>, made with <paramref name="workers"/> workers the first time.</summary>
    public BatchScheduler<TorchBatchTask> For(string name, int workers, IServiceProvider services) =>
        _byName.GetOrAdd(name, _ => new Lazy<BatchScheduler<TorchBatchTask>>(() => new BatchScheduler<TorchBatchTask>(
            new BatchSchedulerOptions { BatchWorkers = workers },
            services.GetService<ILoggerFactory>(),
            services.GetService<IMeterFactory>()))).Value;

    /// <summary>For a container disposed synchronously (<c>ServiceProvider.Dispose</c>): the same as <see cref="DisposeAsync"/>, blocking until it is done.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        foreach (Lazy<BatchScheduler<TorchBatchTask>> scheduler in _byName.Values.Where(s => s.IsValueCreated))
        {
            await scheduler.Value.DisposeAsync().ConfigureAwait(false);
        }
    }
}
