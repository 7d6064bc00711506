using System.Threading.Channels;

namespace Servables;

/// <summary>A fixed number of workers that run queued lifecycle work (loads or unloads) in order.</summary>
/// <remarks>
/// Work items never throw into the pool: each one reports its own failures. Once the pool is
/// stopped, newly queued work runs on the thread pool instead, so that a handle released after
/// the manager was disposed still unloads its version. Thread-safe.
/// </remarks>
internal sealed class WorkerPool
{
    private readonly Channel<WorkItem> _queue = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly Task[] _workers;

    public WorkerPool(int workerCount)
    {
        _workers = new Task[workerCount];
        for (int i = 0; i < workerCount; i++)
        {
            _workers[i] = Task.Run(RunWorkerAsync);
        }
    }

    /// <summary>Queues <paramref name="work"/>; the returned task completes when it has run.</summary>
    public Task Enqueue(Func<Task> work)
    {
        var item = new WorkItem(work);
        return _queue.Writer.TryWrite(item) ? item.Completion.Task : Task.Run(work);
    }

    /// <summary>Stops taking work, lets the workers finish what is queued, and waits for them.</summary>
    public Task StopAsync()
    {
        _queue.Writer.TryComplete();
        return Task.WhenAll(_workers);
    }

    private async Task RunWorkerAsync()
    {
        await foreach (WorkItem item in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                await item.Work().ConfigureAwait(false);
                item.Completion.TrySetResult();
            }
#pragma warning disable CA1031 // A worker outlives any one item's failure; items report their own errors.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                item.Completion.TrySetException(ex);
            }
        }
    }

    private sealed class WorkItem(Func<Task> work)
    {
        public Func<Task> Work { get; } = work;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
