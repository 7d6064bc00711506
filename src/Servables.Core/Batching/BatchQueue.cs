namespace Servables;

/// <summary>One queue of a <see cref="BatchScheduler{TTask}"/>: where callers schedule tasks that its batch function runs together.</summary>
/// <remarks>
/// <para>
/// <see cref="ScheduleAsync"/> queues a task and returns at once; its task completes when the batch
/// holding the task has run (with the batch function's exception when it threw), or is cancelled when
/// the caller's token fires before a worker took the task (a batch never runs for callers who all left).
/// A full queue refuses the task with <see cref="BatchQueueFullException"/>, which is safe to retry.
/// </para>
/// <para>
/// Disposing the queue refuses new tasks, runs what is queued without waiting for the timeout, and
/// completes when its last batch has run: a servable version's queue drains before it unloads.
/// </para>
/// <para>Thread-safe.</para>
/// </remarks>
/// <typeparam name="TTask">The task type.</typeparam>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711:Identifiers should not have incorrect suffix", Justification = "A queue of tasks is what it is (TF Serving's batch scheduler queues).")]
public sealed class BatchQueue<TTask> : IAsyncDisposable
    where TTask : IBatchTask
{
    private readonly BatchScheduler<TTask> _scheduler;
    private readonly Func<Batch<TTask>, CancellationToken, ValueTask> _processBatch;
    private readonly int[] _allowedBatchSizes;
    private readonly long _timeout;
    private readonly int _capacity;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Under the scheduler's lock: queued entries oldest first (cancelled ones are skipped), the size of those not cancelled, batches running.
    private readonly Queue<Entry> _queued = new();
    private int _queuedSize;
    private int _running;
    private bool _closed;

    internal BatchQueue(BatchScheduler<TTask> scheduler, string name, Func<Batch<TTask>, CancellationToken, ValueTask> processBatch, BatchQueueOptions options)
    {
        _scheduler = scheduler;
        _processBatch = processBatch;
        Name = name;
        MaxBatchSize = options.MaxBatchSize;
        _allowedBatchSizes = [.. options.AllowedBatchSizes];
        _timeout = (long)Math.Ceiling(options.BatchTimeout.Ticks * (double)scheduler.Time.TimestampFrequency / TimeSpan.TicksPerSecond);
        _capacity = (int)Math.Min(int.MaxValue, (long)options.MaxEnqueuedBatches * options.MaxBatchSize);
        Continuations = options.AllowSynchronousContinuations ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously;
    }

    /// <summary>The queue's name.</summary>
    public string Name { get; }

    /// <summary>The most a batch of this queue holds.</summary>
    public int MaxBatchSize { get; }

    /// <summary>How the tasks callers await run their continuations (<see cref="BatchQueueOptions.AllowSynchronousContinuations"/>).</summary>
    internal TaskCreationOptions Continuations { get; }

    /// <summary>The sum of the sizes of the tasks waiting now.</summary>
    public int QueuedSize
    {
        get
        {
            lock (_scheduler.Gate)
            {
                return _queuedSize;
            }
        }
    }

    /// <summary>Queues a task; its batch runs on a worker later.</summary>
    /// <param name="task">The task; one larger than <see cref="MaxBatchSize"/> must be an <see cref="ISplittableBatchTask{TTask}"/>.</param>
    /// <param name="cancellationToken">Cancels the task while it waits; once a worker took it, its batch runs.</param>
    /// <returns>A task that completes when the batch function has run the task.</returns>
    /// <exception cref="ArgumentException">The task's size is below 1, or above <see cref="MaxBatchSize"/> and it cannot be split.</exception>
    /// <exception cref="BatchQueueFullException">The queue holds <see cref="BatchQueueOptions.MaxEnqueuedBatches"/> full batches already.</exception>
    /// <exception cref="ObjectDisposedException">The queue or its scheduler is closing.</exception>
    public Task ScheduleAsync(TTask task, CancellationToken cancellationToken = default)
    {
        if (task is null)
        {
            throw new ArgumentNullException(nameof(task));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        int size = task.Size;
        if (size < 1)
        {
            throw new ArgumentException($"A task's Size must be at least 1; this {TypeNames.Readable(task.GetType())} has {size}.", nameof(task));
        }

        if (size <= MaxBatchSize)
        {
            var entry = new Entry(this, task, size, group: null);
            Enqueue(entry, size, cancellationToken);
            return entry.Completion!.Task;
        }

        if (task is not ISplittableBatchTask<TTask> splittable)
        {
            throw new ArgumentException(
                $"A task of size {size} does not fit in a batch of queue '{Name}' (MaxBatchSize {MaxBatchSize}), and {TypeNames.Readable(task.GetType())} cannot be split: implement ISplittableBatchTask<{TypeNames.Readable(typeof(TTask))}>, or raise MaxBatchSize.",
                nameof(task));
        }

        int room;
        lock (_scheduler.Gate)
        {
            room = MaxBatchSize - (_queuedSize % MaxBatchSize); // what the batch being filled can still take
        }

        IReadOnlyList<TTask> pieces = splittable.Split(room, MaxBatchSize);
        CheckPieces(task, size, pieces);
        var group = new SplitGroup(pieces.Count, Continuations);
        Entry[] entries = [.. pieces.Select(piece => new Entry(this, piece, piece.Size, group))];
        Enqueue(entries, size, cancellationToken);
        return group.Completion.Task;
    }

    /// <summary>Refuses new tasks, runs what is queued, and completes when the last batch has run; the queue then leaves its scheduler.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_scheduler.Gate)
        {
            CloseUnderLock();
        }

        await _drained.Task.ConfigureAwait(false);
        lock (_scheduler.Gate)
        {
            _scheduler.RemoveUnderLock(this);
        }
    }

    /// <summary>Stops taking tasks; what is queued becomes ready at once. Under the scheduler's lock.</summary>
    internal void CloseUnderLock()
    {
        if (!_closed)
        {
            _closed = true;
            _scheduler.WakeUnderLock();
        }

        CheckDrainedUnderLock();
    }

    /// <summary>Cancels every task still waiting (a stop out of time).</summary>
    internal void CancelQueued()
    {
        Entry[] queued;
        lock (_scheduler.Gate)
        {
            queued = [.. _queued];
        }

        foreach (Entry entry in queued)
        {
            Cancel(entry, CancellationToken.None);
        }
    }

    /// <summary>The queue's next batch if it is ready at <paramref name="now"/>; otherwise lowers <paramref name="due"/> to when it will be. Under the scheduler's lock.</summary>
    /// <param name="now">The scheduler clock's timestamp.</param>
    /// <param name="due">The earliest timestamp a queue becomes ready at, so far.</param>
    /// <param name="pending">Set when the queue holds tasks or runs batches.</param>
    internal TakenBatch? TryTakeBatchUnderLock(long now, ref long due, ref bool pending)
    {
        while (_queued.TryPeek(out Entry? head) && head.State == EntryState.Cancelled)
        {
            _queued.Dequeue();
        }

        pending |= _queued.Count > 0 || _running > 0;
        if (!_queued.TryPeek(out Entry? oldest))
        {
            return null;
        }

        if (!_closed && _queuedSize < MaxBatchSize && now - oldest.QueuedAt < _timeout)
        {
            due = Math.Min(due, oldest.QueuedAt + _timeout);
            return null;
        }

        var taken = new List<Entry>();
        int size = 0;
        while (_queued.TryPeek(out Entry? next) && (next.State == EntryState.Cancelled || size + next.Size <= MaxBatchSize))
        {
            _queued.Dequeue();
            if (next.State == EntryState.Queued)
            {
                next.State = EntryState.Taken;
                taken.Add(next);
                size += next.Size;
            }
        }

        _queuedSize -= size;
        _running++;
        return new TakenBatch([.. taken], new Batch<TTask>(Name, [.. taken.Select(e => e.Task)], size, PaddedSize(size)));
    }

    /// <summary>Runs a taken batch on the calling worker and completes its tasks.</summary>
    internal async Task RunAsync(TakenBatch taken)
    {
        Batch<TTask> batch = taken.Batch;
        BatchMetrics metrics = _scheduler.Metrics;
        if (metrics.QueueDelay.Enabled)
        {
            long now = _scheduler.Time.GetTimestamp();
            foreach (Entry entry in taken.Entries)
            {
                metrics.QueueDelay.Record(_scheduler.Time.GetElapsedTime(entry.QueuedAt, now).TotalSeconds, new KeyValuePair<string, object?>("queue", Name));
            }
        }

        Exception? failure = null;
        try
        {
            await _processBatch(batch, _scheduler.HardStop).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A failing batch fails its own tasks, never the worker.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = ex;
            Log.BatchFailed(_scheduler.Logger, Name, batch.Size, batch.Tasks.Count, ex);
        }

        metrics.BatchSize.Record(batch.Size, new KeyValuePair<string, object?>("queue", Name));
        metrics.Padding.Record(batch.PaddedSize - batch.Size, new KeyValuePair<string, object?>("queue", Name));
        foreach (Entry entry in taken.Entries)
        {
            entry.Finish(failure, CancellationToken.None);
        }

        lock (_scheduler.Gate)
        {
            _running--;
            CheckDrainedUnderLock();
        }
    }

    private static void CheckPieces(TTask task, int size, IReadOnlyList<TTask> pieces)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        long total = 0;
        bool fits = pieces.Count > 0;
        foreach (TTask piece in pieces)
        {
            total += piece?.Size ?? 0;
            fits &= piece is not null && piece.Size >= 1;
        }

        if (!fits || total != size)
        {
            throw new InvalidOperationException(
                $"{TypeNames.Readable(task.GetType())}.Split returned {pieces.Count} piece(s) of sizes [{string.Join(", ", pieces.Select(p => p?.Size))}] for a task of size {size}; the pieces must be non-null, at least 1 each, and add up to the task's size.");
        }
    }

    private int PaddedSize(int size)
    {
        foreach (int allowed in _allowedBatchSizes)
        {
            if (allowed >= size)
            {
                return allowed;
            }
        }

        return size;
    }

    private void Enqueue(Entry entry, int size, CancellationToken cancellationToken)
    {
        // One entry; the common case, without an array.
        lock (_scheduler.Gate)
        {
            CheckRoomUnderLock(size);
            AppendUnderLock(entry, size);
        }

        if (cancellationToken.CanBeCanceled)
        {
            Register(entry, cancellationToken);
        }
    }

    private void Enqueue(Entry[] entries, int size, CancellationToken cancellationToken)
    {
        lock (_scheduler.Gate)
        {
            CheckRoomUnderLock(size);
            foreach (Entry entry in entries)
            {
                AppendUnderLock(entry, entry.Size);
            }
        }

        if (cancellationToken.CanBeCanceled)
        {
            foreach (Entry entry in entries)
            {
                Register(entry, cancellationToken);
            }
        }
    }

    private static void Register(Entry entry, CancellationToken cancellationToken) =>
        entry.Registration = cancellationToken.UnsafeRegister(static (state, token) => ((Entry)state!).Queue.Cancel((Entry)state!, token), entry);

    private void CheckRoomUnderLock(int size)
    {
        if (_closed)
        {
            throw new ObjectDisposedException(nameof(BatchQueue<TTask>), $"Batch queue '{Name}' is closed (its servable version is unloading, or its scheduler stopped); schedule on the current one.");
        }

        if (_queuedSize + size > _capacity)
        {
            _scheduler.Metrics.Rejections.Add(1, new KeyValuePair<string, object?>("queue", Name));
            throw new BatchQueueFullException(
                $"Batch queue '{Name}' holds tasks of size {_queuedSize} of {_capacity} (MaxEnqueuedBatches × MaxBatchSize {MaxBatchSize}); a task of size {size} does not fit. Retry later, or shed load.");
        }
    }

    private void AppendUnderLock(Entry entry, int size)
    {
        bool wasEmpty = _queuedSize == 0;
        entry.QueuedAt = _scheduler.Time.GetTimestamp();
        _queued.Enqueue(entry);
        _queuedSize += size;
        if (wasEmpty || _timeout == 0 || _queuedSize >= MaxBatchSize)
        {
            _scheduler.WakeUnderLock(); // a batch is ready, or a worker must set the timer for this one
        }
    }

    private void Cancel(Entry entry, CancellationToken cancellationToken)
    {
        lock (_scheduler.Gate)
        {
            if (entry.State != EntryState.Queued)
            {
                return; // taken by a worker (its batch runs), or done
            }

            entry.State = EntryState.Cancelled;
            _queuedSize -= entry.Size;
            CheckDrainedUnderLock();
        }

        entry.Finish(new OperationCanceledException(cancellationToken), cancellationToken);
    }

    private void CheckDrainedUnderLock()
    {
        if (_closed && _queuedSize == 0 && _running == 0)
        {
            _drained.TrySetResult();
        }
    }

    internal enum EntryState
    {
        Queued,
        Taken,
        Cancelled,
    }

    /// <summary>A batch a worker took: the entries to complete, and what the batch function sees.</summary>
    internal sealed record TakenBatch(Entry[] Entries, Batch<TTask> Batch);

    /// <summary>One queued task (or piece of a split one). Its state changes under the scheduler's lock.</summary>
    internal sealed class Entry(BatchQueue<TTask> queue, TTask task, int size, SplitGroup? group)
    {
        public BatchQueue<TTask> Queue { get; } = queue;

        public TTask Task { get; } = task;

        public int Size { get; } = size;

        public long QueuedAt { get; set; }

        public EntryState State { get; set; }

        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>What the caller awaits; null for a piece (the group's is awaited).</summary>
        public TaskCompletionSource? Completion { get; } = group is null ? new(queue.Continuations) : null;

        /// <summary>Ends the entry: ran (no failure), failed, or cancelled (an <see cref="OperationCanceledException"/>).</summary>
        public void Finish(Exception? failure, CancellationToken cancelledBy)
        {
            Registration.Unregister();
            if (group is not null)
            {
                group.PieceDone(failure, cancelledBy);
            }
            else if (failure is null)
            {
                Completion!.TrySetResult();
            }
            else if (failure is OperationCanceledException && cancelledBy.IsCancellationRequested)
            {
                Completion!.TrySetCanceled(cancelledBy);
            }
            else
            {
                Completion!.TrySetException(failure);
            }
        }
    }

    /// <summary>The pieces of one split task: the original completes when the last has run, failed when any failed, cancelled when any was cancelled.</summary>
    internal sealed class SplitGroup(int pieces, TaskCreationOptions continuations)
    {
        private int _left = pieces;
        private Exception? _failure;
        private CancellationToken _cancelledBy;
        private bool _cancelled;

        public TaskCompletionSource Completion { get; } = new(continuations);

        public void PieceDone(Exception? failure, CancellationToken cancelledBy)
        {
            if (failure is OperationCanceledException && cancelledBy.IsCancellationRequested)
            {
                lock (this)
                {
                    (_cancelled, _cancelledBy) = (true, cancelledBy);
                }
            }
            else if (failure is not null)
            {
                Interlocked.CompareExchange(ref _failure, failure, null);
            }

            if (Interlocked.Decrement(ref _left) != 0)
            {
                return;
            }

            if (_failure is { } first)
            {
                Completion.TrySetException(first);
            }
            else if (_cancelled)
            {
                Completion.TrySetCanceled(_cancelledBy);
            }
            else
            {
                Completion.TrySetResult();
            }
        }
    }
}
