namespace Servables.Core.Tests.Manager;

public sealed class WorkerPoolTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Enqueue_OneWorker_RunsItemsOneAtATimeInOrder()
    {
        var pool = new WorkerPool(1);
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new List<int>();
        Task first = pool.Enqueue(async () =>
        {
            firstStarted.SetResult();
            await releaseFirst.Task;
            lock (order)
            {
                order.Add(1);
            }
        });
        Task second = pool.Enqueue(() =>
        {
            lock (order)
            {
                order.Add(2);
            }

            return Task.CompletedTask;
        });

        await firstStarted.Task.WaitAsync(Patience);
        Assert.False(second.IsCompleted); // the only worker is inside the first item, which cannot finish yet
        releaseFirst.SetResult();
        await Task.WhenAll(first, second).WaitAsync(Patience);

        Assert.Equal([1, 2], order);
        await pool.StopAsync().WaitAsync(Patience);
    }

    [Fact]
    public async Task Enqueue_TwoWorkers_RunTwoItemsAtOnce()
    {
        var pool = new WorkerPool(2);
        var bothStarted = new CountdownEvent(2);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Func<Task> item = async () =>
        {
            bothStarted.Signal();
            await release.Task;
        };
        Task a = pool.Enqueue(item);
        Task b = pool.Enqueue(item);

        Assert.True(await Task.Run(() => bothStarted.Wait(Patience))); // neither can finish before both started
        release.SetResult();
        await Task.WhenAll(a, b).WaitAsync(Patience);
        await pool.StopAsync().WaitAsync(Patience);
    }

    [Fact]
    public async Task Enqueue_ItemThrows_FaultsOnlyItsOwnTask_AndTheWorkerGoesOn()
    {
        var pool = new WorkerPool(1);

        Task failing = pool.Enqueue(() => throw new IOException("item failed"));
        Task next = pool.Enqueue(() => Task.CompletedTask);

        IOException ex = await Assert.ThrowsAsync<IOException>(() => failing.WaitAsync(Patience));
        Assert.Equal("item failed", ex.Message);
        await next.WaitAsync(Patience);
        await pool.StopAsync().WaitAsync(Patience);
    }

    [Fact]
    public async Task StopAsync_RunsWhatIsQueued_ThenNewWorkRunsOnTheThreadPool()
    {
        var pool = new WorkerPool(1);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task blocking = pool.Enqueue(() => release.Task);
        int queuedRuns = 0;
        Task queued = pool.Enqueue(() =>
        {
            Interlocked.Increment(ref queuedRuns);
            return Task.CompletedTask;
        });

        Task stopping = pool.StopAsync();
        Assert.False(stopping.IsCompleted); // the worker is held by the blocking item
        release.SetResult();
        await Task.WhenAll(stopping, blocking, queued).WaitAsync(Patience);
        Assert.Equal(1, queuedRuns);

        bool ranAfterStop = false;
        await pool.Enqueue(() =>
        {
            ranAfterStop = true;
            return Task.CompletedTask;
        }).WaitAsync(Patience);
        Assert.True(ranAfterStop);
    }
}
