using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Servables.Testing;

namespace Servables.Core.Tests.Batching;

public sealed class BatchSchedulerTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new();
    private readonly ConcurrentQueue<Batch<Work>> _ran = new();
    private BatchScheduler<Work> _scheduler = null!;

    public Task InitializeAsync()
    {
        _scheduler = new BatchScheduler<Work>(new BatchSchedulerOptions { TimeProvider = _time });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _scheduler.DisposeAsync();

    [Fact]
    public async Task FullBatches_RunWithoutWaitingForTheTimeout_AndNeverExceedMaxBatchSize()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 4, BatchTimeout = TimeSpan.FromSeconds(5) });

        Task[] tasks = [.. Enumerable.Range(0, 10).Select(i => queue.ScheduleAsync(new Work(1, i)))];
        await Task.WhenAll(tasks[..8]).WaitAsync(Wait);
        await WaitForTimerAsync(); // a worker looked at the last two and set the timer for them
        Assert.Equal([4, 4], _ran.Select(b => b.Size));
        Assert.All(tasks[8..], t => Assert.False(t.IsCompleted));

        _time.Advance(TimeSpan.FromSeconds(5));
        await Task.WhenAll(tasks).WaitAsync(Wait);
        Assert.Equal([4, 4, 2], _ran.Select(b => b.Size));
        Assert.Equal(Enumerable.Range(0, 10), _ran.SelectMany(b => b.Tasks).Select(w => w.Id)); // in order
    }

    [Fact]
    public async Task LoneTask_WaitsBatchTimeout_NotATickLess()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 8, BatchTimeout = TimeSpan.FromMilliseconds(5) });

        Task lone = queue.ScheduleAsync(new Work(2, 0));
        await WaitForTimerAsync();
        _time.Advance(TimeSpan.FromMilliseconds(5) - TimeSpan.FromTicks(1)); // the timer is not due: no worker wakes
        Assert.False(lone.IsCompleted);
        Assert.Empty(_ran);

        _time.Advance(TimeSpan.FromTicks(1));
        await lone.WaitAsync(Wait);
        Assert.Equal(2, Assert.Single(_ran).Size);
    }

    [Fact]
    public async Task ZeroTimeout_RunsWhatIsQueued_AtOnce()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 8 });

        await queue.ScheduleAsync(new Work(3, 0)).WaitAsync(Wait); // no time passes

        Assert.Equal((3, 3), (Assert.Single(_ran).Size, _ran.Single().PaddedSize));
    }

    [Fact]
    public async Task AllowedBatchSizes_PadUpToTheNextOne()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 8, BatchTimeout = TimeSpan.FromSeconds(1), AllowedBatchSizes = { 2, 4, 8 } });

        Task[] tasks = [queue.ScheduleAsync(new Work(1, 0)), queue.ScheduleAsync(new Work(2, 1))];
        await WaitForTimerAsync();
        _time.Advance(TimeSpan.FromSeconds(1));
        await Task.WhenAll(tasks).WaitAsync(Wait);

        Batch<Work> batch = Assert.Single(_ran);
        Assert.Equal((3, 4), (batch.Size, batch.PaddedSize));
    }

    [Fact]
    public async Task FullQueue_RefusesClearly_AndLosesNothingQueued()
    {
        var release = new TaskCompletionSource();
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 2, MaxEnqueuedBatches = 2 }, release.Task);
        Task running = queue.ScheduleAsync(new Work(1, 0));
        await Eventually.WaitUntilAsync(() => queue.QueuedSize == 0, what: "the worker takes the first task");
        Task[] queued = [.. Enumerable.Range(1, 4).Select(i => queue.ScheduleAsync(new Work(1, i)))];

        BatchQueueFullException full = Assert.Throws<BatchQueueFullException>(() => { _ = queue.ScheduleAsync(new Work(1, 5)); });
        Assert.Contains("'q'", full.Message, StringComparison.Ordinal);
        Assert.Contains("4 of 4", full.Message, StringComparison.Ordinal);

        release.SetResult();
        await Task.WhenAll([running, .. queued]).WaitAsync(Wait);
        Assert.Equal(Enumerable.Range(0, 5), _ran.SelectMany(b => b.Tasks).Select(w => w.Id));
    }

    [Fact]
    public async Task CancelledBeforeItsBatchRuns_TaskIsRemoved_ABatchOfCallersWhoAllLeftNeverRuns()
    {
        var release = new TaskCompletionSource();
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 4 }, release.Task);
        Task running = queue.ScheduleAsync(new Work(1, 0));
        await Eventually.WaitUntilAsync(() => queue.QueuedSize == 0, what: "the worker takes the first task");
        using var leaving = new CancellationTokenSource();
        Task[] left = [queue.ScheduleAsync(new Work(2, 1), leaving.Token), queue.ScheduleAsync(new Work(2, 2), leaving.Token)];
        Assert.Equal(4, queue.QueuedSize);

        leaving.Cancel();

        Assert.Equal(0, queue.QueuedSize);
        foreach (Task task in left)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task.WaitAsync(Wait));
        }

        Task after = queue.ScheduleAsync(new Work(1, 3));
        release.SetResult();
        await Task.WhenAll(running, after).WaitAsync(Wait);
        Assert.Equal([0, 3], _ran.SelectMany(b => b.Tasks).Select(w => w.Id));
    }

    [Fact]
    public async Task BatchThatThrows_FailsEachOfItsTasks_AndTheSchedulerGoesOn()
    {
        await using BatchQueue<Work> queue = _scheduler.AddQueue("q", (batch, _) =>
        {
            _ran.Enqueue(batch);
            return batch.Tasks.Any(t => t.Id == 1) ? throw new InvalidOperationException("model refused the batch") : ValueTask.CompletedTask;
        }, new BatchQueueOptions { MaxBatchSize = 2, BatchTimeout = TimeSpan.FromSeconds(1) });

        Task[] failing = [queue.ScheduleAsync(new Work(1, 0)), queue.ScheduleAsync(new Work(1, 1))]; // one full batch
        foreach (Task task in failing)
        {
            InvalidOperationException error = await Assert.ThrowsAsync<InvalidOperationException>(() => task.WaitAsync(Wait));
            Assert.Equal("model refused the batch", error.Message);
        }

        Task[] next = [queue.ScheduleAsync(new Work(1, 2)), queue.ScheduleAsync(new Work(1, 3))];
        await Task.WhenAll(next).WaitAsync(Wait);
    }

    [Fact]
    public async Task TwoQueues_OneWorker_TakeTurns()
    {
        var release = new TaskCompletionSource();
        await using BatchQueue<Work> a = AddQueue(new BatchQueueOptions { MaxBatchSize = 1 }, release.Task, "a");
        await using BatchQueue<Work> b = AddQueue(new BatchQueueOptions { MaxBatchSize = 1 }, release.Task, "b");
        Task first = a.ScheduleAsync(new Work(1, 0));
        await Eventually.WaitUntilAsync(() => a.QueuedSize == 0, what: "the worker takes the first task");
        Task[] rest = [.. Enumerable.Range(1, 4).Select(i => a.ScheduleAsync(new Work(1, i))), .. Enumerable.Range(5, 4).Select(i => b.ScheduleAsync(new Work(1, i)))];

        release.SetResult();
        await Task.WhenAll([first, .. rest]).WaitAsync(Wait);

        Assert.Equal("babababa", string.Concat(_ran.Skip(1).Select(batch => batch.QueueName))); // after a's first batch, b's turn: an old and a new version interleave
    }

    [Fact]
    public async Task TaskLargerThanABatch_IsSplitToFillTheBatchBeingFilled_AndCompletesWhenEveryPieceRan()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 4, BatchTimeout = TimeSpan.FromSeconds(1) });
        Task small = queue.ScheduleAsync(new Work(1, 0));
        var large = new SplittableWork(10, 1);

        Task whole = queue.ScheduleAsync(large);
        await WaitForTimerAsync();
        _time.Advance(TimeSpan.FromSeconds(1));
        await Task.WhenAll(small, whole).WaitAsync(Wait);

        Assert.Equal([3, 4, 3], large.Splits.Single().Select(piece => piece.Size)); // the first fills the batch the small task opened
        Assert.Equal([4, 4, 3], _ran.Select(batch => batch.Size)); // 1 + the first piece of 3, then 4, then the last 3
        Assert.All(_ran, batch => Assert.InRange(batch.Size, 1, 4));
    }

    [Fact]
    public async Task TaskLargerThanABatch_ThatCannotSplit_IsRefusedWithTheFix()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 4 });

        ArgumentException error = Assert.Throws<ArgumentException>(() => { _ = queue.ScheduleAsync(new Work(5, 0)); });

        Assert.Contains("size 5", error.Message, StringComparison.Ordinal);
        Assert.Contains("ISplittableBatchTask", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, queue.QueuedSize);
    }

    [Fact]
    public async Task DisposingAQueue_RunsWhatIsQueuedWithoutWaiting_ThenRefusesNewTasks()
    {
        BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 8, BatchTimeout = TimeSpan.FromSeconds(10) });
        Task[] queued = [queue.ScheduleAsync(new Work(1, 0)), queue.ScheduleAsync(new Work(1, 1))];

        await queue.DisposeAsync().AsTask().WaitAsync(Wait); // a version's queue drains before it unloads; no time passes

        Assert.All(queued, t => Assert.True(t.IsCompletedSuccessfully));
        Assert.Throws<ObjectDisposedException>(() => { _ = queue.ScheduleAsync(new Work(1, 2)); });
    }

    [Fact]
    public async Task StopOutOfTime_CancelsWhatIsQueued_AndTheRunningBatchSeesItsToken()
    {
        var sawCancel = new TaskCompletionSource();
        await using BatchQueue<Work> queue = _scheduler.AddQueue("q", async (batch, token) =>
        {
            _ran.Enqueue(batch);
            await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => sawCancel.TrySetResult(), TaskScheduler.Default);
        }, new BatchQueueOptions { MaxBatchSize = 1 });
        Task running = queue.ScheduleAsync(new Work(1, 0));
        await Eventually.WaitUntilAsync(() => !_ran.IsEmpty, what: "the first batch runs");
        Task queued = queue.ScheduleAsync(new Work(1, 1));
        using var outOfTime = new CancellationTokenSource();

        Task stop = _scheduler.StopAsync(outOfTime.Token);
        Assert.False(stop.IsCompleted);
        outOfTime.Cancel();

        await stop.WaitAsync(Wait);
        await sawCancel.Task.WaitAsync(Wait);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued.WaitAsync(Wait));
        await running.WaitAsync(Wait); // its batch function returned
        Assert.Single(_ran);
    }

    [Theory]
    [InlineData(new[] { 2, 4 }, 8, "must end at MaxBatchSize (8)")]
    [InlineData(new[] { 4, 2, 8 }, 8, "positive and increasing")]
    [InlineData(new[] { 0, 8 }, 8, "positive and increasing")]
    public void AddQueue_BadAllowedBatchSizes_IsRefusedWithTheRule(int[] allowed, int max, string expected)
    {
        var options = new BatchQueueOptions { MaxBatchSize = max };
        foreach (int size in allowed)
        {
            options.AllowedBatchSizes.Add(size);
        }

        ArgumentException error = Assert.Throws<ArgumentException>(() => _scheduler.AddQueue("q", (_, _) => ValueTask.CompletedTask, options));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ManyCallersOnTwoWorkers_EveryTaskRunsOnce_NoBatchOverflows()
    {
        await using var scheduler = new BatchScheduler<Work>(new BatchSchedulerOptions { BatchWorkers = 2 });
        var seen = new ConcurrentDictionary<int, int>();
        int overflows = 0;
        await using BatchQueue<Work> queue = scheduler.AddQueue("q", (batch, _) =>
        {
            if (batch.Size > 8)
            {
                Interlocked.Increment(ref overflows);
            }

            foreach (Work work in batch.Tasks)
            {
                seen.AddOrUpdate(work.Id, 1, (_, n) => n + 1);
            }

            return ValueTask.CompletedTask;
        }, new BatchQueueOptions { MaxBatchSize = 8, MaxEnqueuedBatches = 1_000, BatchTimeout = TimeSpan.FromMilliseconds(1) });

        Task[] callers = [.. Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < 250; i++)
            {
                await queue.ScheduleAsync(new Work(1 + ((c + i) % 3), (c * 1_000) + i));
            }
        }))];
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, overflows);
        Assert.Equal(2_000, seen.Count);
        Assert.All(seen.Values, n => Assert.Equal(1, n));
    }

    [Fact]
    public async Task SynchronousContinuations_RunOnTheWorkerBeforeItTakesTheNextBatch()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int ran = 0;
        await using BatchQueue<Work> queue = _scheduler.AddQueue("sync", async (batch, _) =>
        {
            if (Interlocked.Increment(ref ran) == 1)
            {
                await gate.Task; // held until the continuation below is in place
            }
        }, new BatchQueueOptions { MaxBatchSize = 1, AllowSynchronousContinuations = true });
        Task first = queue.ScheduleAsync(new Work(1, 0));
        Task second = queue.ScheduleAsync(new Work(1, 1)); // the scheduler's one worker takes it only after the first batch is done
        (int ranBefore, string stack) seen = (-1, string.Empty);
        Task continuation = first.ContinueWith(_ => seen = (Volatile.Read(ref ran), Environment.StackTrace), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        gate.SetResult();
        await Task.WhenAll(continuation, second).WaitAsync(Wait);

        Assert.Equal(1, seen.ranBefore); // run by the worker itself, before it went on to the second batch
        Assert.Contains("Servables.BatchQueue", seen.stack, StringComparison.Ordinal); // inside its completion of the first
    }

    [Fact]
    public async Task AsynchronousContinuations_ByDefault_RunOffTheWorker()
    {
        await using BatchQueue<Work> queue = AddQueue(new BatchQueueOptions { MaxBatchSize = 1 });

        string stack = await Task.Run(async () =>
        {
            await queue.ScheduleAsync(new Work(1, 0)).ConfigureAwait(false);
            return Environment.StackTrace;
        }).WaitAsync(Wait);

        Assert.DoesNotContain("Servables.BatchQueue", stack, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AsynchronousContinuations_ByDefault_ACallerThatBlocksAfterItsAwaitNeverStopsTheWorker()
    {
        using var secondRan = new ManualResetEventSlim();
        int batches = 0;
        await using BatchQueue<Work> queue = _scheduler.AddQueue("async", (batch, _) =>
        {
            if (Interlocked.Increment(ref batches) == 2)
            {
                secondRan.Set();
            }

            return ValueTask.CompletedTask;
        }, new BatchQueueOptions { MaxBatchSize = 1 });

        Task first = Task.Run(async () =>
        {
            await queue.ScheduleAsync(new Work(1, 0)).ConfigureAwait(false);
            Assert.True(secondRan.Wait(Wait)); // blocks until the (one) worker runs the next batch: on the worker itself this would never return
        });
        await Eventually.WaitUntilAsync(() => Volatile.Read(ref batches) == 1, what: "the first batch ran");
        await queue.ScheduleAsync(new Work(1, 1)).WaitAsync(Wait);

        await first.WaitAsync(Wait);
    }

    private BatchQueue<Work> AddQueue(BatchQueueOptions options, Task? gate = null, string name = "q") =>
        _scheduler.AddQueue(name, async (batch, _) =>
        {
            _ran.Enqueue(batch);
            if (gate is not null)
            {
                await gate;
            }
        }, options);

    private Task WaitForTimerAsync() =>
        Eventually.WaitUntilAsync(() => _scheduler.TimerDue != long.MaxValue, what: "a worker sets the timer for the batch timeout");

    private class Work(int size, int id) : IBatchTask
    {
        public int Size { get; } = size;

        public int Id { get; } = id;
    }

    private sealed class SplittableWork(int size, int id) : Work(size, id), ISplittableBatchTask<Work>
    {
        public List<IReadOnlyList<Work>> Splits { get; } = [];

        public IReadOnlyList<Work> Split(int firstSize, int maxSize)
        {
            var pieces = new List<Work> { new(firstSize, Id) };
            for (int left = Size - firstSize; left > 0; left -= Math.Min(left, maxSize))
            {
                pieces.Add(new Work(Math.Min(left, maxSize), Id));
            }

            Splits.Add(pieces);
            return pieces;
        }
    }
}
