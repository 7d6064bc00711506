using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Servables;

/// <summary>
/// Forms batches from the tasks many callers schedule and runs each batch once, on a fixed set of
/// workers that all its queues share (TF Serving's shared batch scheduler).
/// </summary>
/// <remarks>
/// <para>
/// Each queue (<see cref="AddQueue"/>, typically one per servable version) has its own batch function
/// and options. A queue's batch is ready when its tasks fill <see cref="BatchQueueOptions.MaxBatchSize"/>,
/// when its oldest task has waited <see cref="BatchQueueOptions.BatchTimeout"/>, or when the queue is
/// closing; a free worker takes the next ready batch, visiting the queues in turn, so that the queues
/// of an old and a new version interleave during a swap. A batch never exceeds its queue's
/// <see cref="BatchQueueOptions.MaxBatchSize"/>; tasks keep their order within a queue.
/// </para>
/// <para>
/// A batch function that throws fails each task of that batch with the exception; the worker goes on.
/// Stopping (<see cref="StopAsync"/>, <see cref="DisposeAsync"/>) refuses new tasks, runs what is
/// queued without waiting for timeouts, and returns when the workers are done; when the stop's token
/// is cancelled first, queued tasks are cancelled and running batch functions see their token cancelled.
/// </para>
/// <para>Thread-safe: one lock, held to queue, take or cancel tasks, never while a batch function runs.</para>
/// </remarks>
/// <typeparam name="TTask">The task type.</typeparam>
public sealed class BatchScheduler<TTask> : IAsyncDisposable
    where TTask : IBatchTask
{
    private readonly List<BatchQueue<TTask>> _queues = [];
    private readonly ITimer _timer;
    private readonly Task[] _workers;
    private readonly CancellationTokenSource _hardStop = new();
    private TaskCompletionSource _wake = NewWake();
    private long _timerDue = long.MaxValue;
    private int _sleeping;
    private int _nextQueue;
    private Task? _stopped;

    /// <summary>Creates the scheduler and starts its workers.</summary>
    /// <param name="options">Workers and clock; null for the defaults.</param>
    /// <param name="loggerFactory">Where to log failed batches; null for nowhere.</param>
    /// <param name="meterFactory">Creates the "Servables.Core" meter for the batch metrics; null to use a process-wide one.</param>
    /// <exception cref="ArgumentException">The options are invalid (the message lists every problem).</exception>
    public BatchScheduler(BatchSchedulerOptions? options = null, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        options ??= new BatchSchedulerOptions();
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid BatchSchedulerOptions: " + string.Join(" ", errors), nameof(options));
        }

        Time = options.TimeProvider;
        Logger = (ILogger?)loggerFactory?.CreateLogger("Servables.Batching") ?? NullLogger.Instance;
        Metrics = BatchMetrics.For(meterFactory);
        _timer = Time.CreateTimer(static state => ((BatchScheduler<TTask>)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _workers = new Task[options.BatchWorkers];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = Task.Run(RunWorkerAsync);
        }
    }

    /// <summary>How many batches may run at once.</summary>
    public int BatchWorkers => _workers.Length;

    internal Lock Gate { get; } = new();

    internal TimeProvider Time { get; }

    internal ILogger Logger { get; }

    internal BatchMetrics Metrics { get; }

    /// <summary>When the timer that wakes the workers for the next batch timeout is set to fire (a timestamp of <see cref="Time"/>); <see cref="long.MaxValue"/> when it is not set. Tests wait for it: a worker that set it found nothing ready.</summary>
    internal long TimerDue
    {
        get
        {
            lock (Gate)
            {
                return _timerDue;
            }
        }
    }

    /// <summary>Cancelled when a stop runs out of time: what running batch functions receive.</summary>
    internal CancellationToken HardStop => _hardStop.Token;

    /// <summary>Adds a queue whose batches <paramref name="processBatch"/> runs; dispose the queue to drain and remove it.</summary>
    /// <param name="name">Names the queue in errors, logs and metrics (for a servable, its id).</param>
    /// <param name="processBatch">Runs one batch: gives each task its result, or throws to fail them all. Called on a worker, one batch at a time per worker.</param>
    /// <param name="options">How the queue forms batches; null for the defaults. Copied.</param>
    /// <returns>The queue; the caller disposes it (disposing the scheduler closes it too).</returns>
    /// <exception cref="ArgumentException">The name is empty or the options are invalid.</exception>
    /// <exception cref="ObjectDisposedException">The scheduler is stopping.</exception>
    public BatchQueue<TTask> AddQueue(string name, Func<Batch<TTask>, CancellationToken, ValueTask> processBatch, BatchQueueOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(processBatch);
        options ??= new BatchQueueOptions();
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid BatchQueueOptions for queue '{name}': " + string.Join(" ", errors), nameof(options));
        }

        var queue = new BatchQueue<TTask>(this, name, processBatch, options);
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_stopped is not null, this);
            _queues.Add(queue);
        }

        return queue;
    }

    /// <summary>Refuses new tasks, runs what is queued, and completes when every worker is done.</summary>
    /// <param name="cancellationToken">When cancelled before that, queued tasks are cancelled and running batch functions see their token cancelled; the stop still waits for them to return.</param>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        Task stopped;
        lock (Gate)
        {
            if (_stopped is null)
            {
                foreach (BatchQueue<TTask> queue in _queues)
                {
                    queue.CloseUnderLock();
                }

                WakeUnderLock();
                _stopped = StopWorkersAsync();
            }

            stopped = _stopped;
        }

        using (cancellationToken.UnsafeRegister(static state => ((BatchScheduler<TTask>)state!).StopNow(), this))
        {
            await stopped.ConfigureAwait(false);
        }
    }

    /// <summary>Stops as <see cref="StopAsync"/> does, without a deadline.</summary>
    public ValueTask DisposeAsync() => new(StopAsync());

    /// <summary>Wakes every sleeping worker to look for a ready batch. Under <see cref="Gate"/>.</summary>
    internal void WakeUnderLock()
    {
        if (_sleeping == 0)
        {
            return; // every worker is busy, and looks at the queues again before it sleeps
        }

        _sleeping = 0;
        _wake.TrySetResult(); // continuations run asynchronously: never inside the lock
        _wake = NewWake();
    }

    /// <summary>Forgets a queue that has drained. Under <see cref="Gate"/>.</summary>
    internal void RemoveUnderLock(BatchQueue<TTask> queue) => _queues.Remove(queue);

    private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task StopWorkersAsync()
    {
        await Task.WhenAll(_workers).ConfigureAwait(false);
        _timer.Dispose();
        _hardStop.Dispose();
    }

    private void StopNow()
    {
        List<BatchQueue<TTask>> queues;
        lock (Gate)
        {
            queues = [.. _queues];
        }

        foreach (BatchQueue<TTask> queue in queues)
        {
            queue.CancelQueued(); // first, so that no worker freed by the cancel below takes one of them
        }

        try
        {
            _hardStop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The workers are done already.
        }
    }

    private void OnTimer()
    {
        lock (Gate)
        {
            _timerDue = long.MaxValue;
            WakeUnderLock();
        }
    }

    private async Task RunWorkerAsync()
    {
        while (true)
        {
            BatchQueue<TTask>? queue = null;
            BatchQueue<TTask>.TakenBatch? batch = null;
            Task wake = Task.CompletedTask;
            lock (Gate)
            {
                long now = Time.GetTimestamp();
                long due = long.MaxValue;
                bool pending = false;
                for (int i = 0; i < _queues.Count && batch is null; i++)
                {
                    int index = (_nextQueue + i) % _queues.Count;
                    if (_queues[index].TryTakeBatchUnderLock(now, ref due, ref pending) is { } taken)
                    {
                        (queue, batch, _nextQueue) = (_queues[index], taken, index + 1);
                    }
                }

                if (batch is null)
                {
                    if (_stopped is not null && !pending)
                    {
                        return;
                    }

                    wake = _wake.Task;
                    _sleeping++;
                    if (due < _timerDue)
                    {
                        _timerDue = due;
                        _timer.Change(TimeSpan.FromTicks(Math.Max(1, (long)Math.Ceiling((due - now) * (double)TimeSpan.TicksPerSecond / Time.TimestampFrequency))), Timeout.InfiniteTimeSpan);
                    }
                }
            }

            if (batch is null)
            {
                await wake.ConfigureAwait(false);
                continue;
            }

            await queue!.RunAsync(batch).ConfigureAwait(false);
        }
    }
}
