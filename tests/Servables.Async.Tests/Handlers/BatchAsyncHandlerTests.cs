using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Async.Tests.Handlers;

/// <summary>
/// A batched handler end to end through the public path (AddAsyncHandler, submit, poll, wait, cancel, stop), over
/// the store a derived class chooses: <see cref="BatchAsyncHandlerInMemoryTests"/> here, and the SQLite store's in
/// Servables.Sqlite.Tests, which shares this file.
/// </summary>
public abstract class BatchAsyncHandlerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>Whether the store keeps requests a stop abandons (for the next start) instead of failing them.</summary>
    protected virtual bool Durable => false;

    /// <summary>Chooses the store of every API these tests start; the default in-memory store unless overridden.</summary>
    protected virtual void UseStore(AsyncApiOptions options)
    {
    }

    [Fact]
    public async Task ConcurrentSubmits_RunInBatchesNoLargerThanMaxBatchSize_EachRequestGetsItsOwnResult()
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 4 });
        IAsyncApiClient client = host.Client();
        BatchProbe probe = Probe(host);

        string first = await HoldFirstBatchAsync(host);
        string[] texts = [.. Enumerable.Range(0, 40).Select(i => $"r{i}")];
        string[] ids = await Task.WhenAll(texts.Select(text => Task.Run(async () => await client.SubmitTextAsync(text))));
        await Eventually.WaitUntilAsync(() => Api(host).BatchQueuedSize == 39, Wait, "the batch stage (10 × 4 places, one held) to fill");
        Assert.Equal(AsyncRequestState.InProgress, (await client.GetStatusAsync(first)).State);
        Assert.Equal(AsyncRequestState.InQueue, (await client.GetStatusAsync(ids[0])).State);
        probe.Gate.SetResult();

        for (int i = 0; i < ids.Length; i++)
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync(ids[i], Wait);
            Assert.Equal(AsyncRequestState.Completed, done.State);
            Assert.Equal(texts[i].ToUpperInvariant(), done.Result!.Value.GetProperty("upper").GetString());
            Assert.Equal(ids[i], done.Result!.Value.GetProperty("id").GetString());
        }

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(first, Wait)).State);
        IReadOnlyList<int> sizes = probe.BatchSizes;
        Assert.All(sizes, size => Assert.InRange(size, 1, 4));
        Assert.Equal(41, sizes.Sum());
        Assert.Equal(new[] { 1, 4, 4, 4, 4, 4, 4, 4, 4, 4 }, sizes.Take(10)); // the 39 queued behind the held batch run 4 at a time
        Assert.Equal(41, probe.SeenIds.Distinct().Count());
    }

    [Fact]
    public async Task HandlerFailsOneRequest_OnlyThatRequestFails_BadPayloadFailsAloneToo()
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8 });
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string a = await client.SubmitTextAsync("a");
        string fail = await client.SubmitTextAsync("fail");
        string badJson = await client.SubmitAsync("{ not json"u8.ToArray(), "application/json");
        string b = await client.SubmitTextAsync("b");
        await ReleaseWhenQueuedAsync(host, 4);

        AsyncRequestStatus failed = await client.WaitForCompletionAsync(fail, Wait);
        Assert.Equal(AsyncRequestState.Failed, failed.State);
        Assert.Equal("The handler failed the request with ArgumentException: bad input", failed.Error);
        AsyncRequestStatus malformed = await client.WaitForCompletionAsync(badJson, Wait);
        Assert.Equal(AsyncRequestState.Failed, malformed.State);
        Assert.Contains("JSON", malformed.Error, StringComparison.Ordinal);
        Assert.Equal("A", (await client.WaitForCompletionAsync(a, Wait)).Result!.Value.GetProperty("upper").GetString());
        AsyncRequestStatus bDone = await client.WaitForCompletionAsync(b, Wait);
        Assert.Equal("B", bDone.Result!.Value.GetProperty("upper").GetString());
        Assert.Equal(3, bDone.Result!.Value.GetProperty("batch").GetInt32()); // one batch; the bad payload never reached the handler
        Assert.Equal(new[] { 1, 3 }, Probe(host).BatchSizes);
        Assert.DoesNotContain(badJson, Probe(host).SeenIds);
    }

    [Fact]
    public async Task HandlerThrows_FailsEveryRequestOfItsBatch_LaterRequestsSucceed()
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8 });
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string[] batch = [await client.SubmitTextAsync("x"), await client.SubmitTextAsync("throw"), await client.SubmitTextAsync("y")];
        await ReleaseWhenQueuedAsync(host, 3);

        foreach (string id in batch)
        {
            AsyncRequestStatus failed = await client.WaitForCompletionAsync(id, Wait);
            Assert.Equal(AsyncRequestState.Failed, failed.State);
            Assert.Equal("The handler threw InvalidOperationException: batch bug", failed.Error);
        }

        AsyncRequestStatus later = await client.WaitForCompletionAsync(await client.SubmitTextAsync("later"), Wait);
        Assert.Equal(AsyncRequestState.Completed, later.State);
        Assert.Equal("LATER", later.Result!.Value.GetProperty("upper").GetString());
    }

    [Theory]
    [InlineData("short", "returned 2 result(s) for a batch of 3 request(s)")]
    [InlineData("null", "no result (a null entry at 1 of 3)")]
    public async Task HandlerReturnsWrongResults_FailsWithAClearError_ApiGoesOn(string fault, string expected)
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8 });
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string[] batch = [await client.SubmitTextAsync("p"), await client.SubmitTextAsync(fault), await client.SubmitTextAsync("q")];
        await ReleaseWhenQueuedAsync(host, 3);

        AsyncRequestStatus faulty = await client.WaitForCompletionAsync(batch[1], Wait);
        Assert.Equal(AsyncRequestState.Failed, faulty.State);
        Assert.Contains(expected, faulty.Error, StringComparison.Ordinal);
        AsyncRequestState othersExpected = fault == "short" ? AsyncRequestState.Failed : AsyncRequestState.Completed; // a miscount fails the whole batch
        Assert.Equal(othersExpected, (await client.WaitForCompletionAsync(batch[0], Wait)).State);
        Assert.Equal(othersExpected, (await client.WaitForCompletionAsync(batch[2], Wait)).State);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State);
    }

    [Fact]
    public async Task CancelBeforeItsBatchRuns_NeverReachesTheHandler()
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8 });
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string victim = await client.SubmitTextAsync("victim");
        string kept = await client.SubmitTextAsync("kept");
        await Eventually.WaitUntilAsync(() => Api(host).BatchQueuedSize == 2, Wait, "both requests to wait for a batch");
        Assert.True(await client.CancelAsync(victim));
        Probe(host).Gate.SetResult();

        AsyncRequestStatus cancelled = await client.WaitForCompletionAsync(victim, Wait);
        Assert.Equal(AsyncRequestState.Failed, cancelled.State);
        Assert.Equal("Cancelled by the caller before it ran.", cancelled.Error);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(kept, Wait)).State);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State);
        Assert.DoesNotContain(victim, Probe(host).SeenIds);
        Assert.Contains(kept, Probe(host).SeenIds);
    }

    [Fact]
    public async Task CancelWhileItsBatchRuns_FailsAsCancelledByTheCaller_OthersOfTheBatchComplete()
    {
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8 });
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string cancelled = await client.SubmitTextAsync("cancelme");
        string kept = await client.SubmitTextAsync("kept");
        await ReleaseWhenQueuedAsync(host, 2);
        await Eventually.WaitUntilAsync(
            async () => (await client.GetStatusAsync(cancelled)).State == AsyncRequestState.InProgress && (await client.GetStatusAsync(kept)).State == AsyncRequestState.InProgress,
            Wait,
            "the second batch to start both its requests");
        Assert.True(await client.CancelAsync(cancelled));

        AsyncRequestStatus failed = await client.WaitForCompletionAsync(cancelled, Wait);
        Assert.Equal(AsyncRequestState.Failed, failed.State);
        Assert.Equal("Cancelled by the caller while it ran.", failed.Error);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(kept, Wait)).State);
        Assert.Equal(new[] { 1, 2 }, Probe(host).BatchSizes);
    }

    [Fact]
    public async Task RequestTimeout_CountsFromItsBatchStart_FailsAsPastItsDeadline()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartAsync(o => (o.Batching, o.RequestTimeout) = (new BatchQueueOptions { MaxBatchSize = 8 }, TimeSpan.FromSeconds(30)), time);
        IAsyncApiClient client = host.Client();

        string late = await client.SubmitTextAsync("cancelme");
        await Eventually.WaitUntilAsync(() => Probe(host).Batches == 1, Wait, "the batch to start");
        time.Advance(TimeSpan.FromSeconds(30));

        AsyncRequestStatus failed = await client.WaitForCompletionAsync(late, Timeout.InfiniteTimeSpan).AsTask().WaitAsync(Wait);
        Assert.Equal(AsyncRequestState.Failed, failed.State);
        Assert.Equal("The request exceeded its deadline of 00:00:30 (RequestTimeout) and was cancelled.", failed.Error);
    }

    [Fact]
    public async Task LoneRequest_RunsWhenBatchTimeoutPasses_NotBefore()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8, BatchTimeout = TimeSpan.FromMilliseconds(50) }, time);
        IAsyncApiClient client = host.Client();

        string lone = await client.SubmitTextAsync("lone");
        await Eventually.WaitUntilAsync(() => Api(host).BatchTimerDue != long.MaxValue, Wait, "a worker to wait for the batch timeout");
        time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.Equal(AsyncRequestState.InQueue, (await client.GetStatusAsync(lone)).State);
        Assert.Equal(0, Probe(host).Batches);

        time.Advance(TimeSpan.FromMilliseconds(1));
        AsyncRequestStatus done = await client.WaitForCompletionAsync(lone, Timeout.InfiniteTimeSpan).AsTask().WaitAsync(Wait);
        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal(new[] { 1 }, Probe(host).BatchSizes);
    }

    [Fact]
    public async Task NoBatchingOptions_BatchedHandlerGetsTheDefaults()
    {
        await using AsyncHost host = await StartAsync();
        IAsyncApiClient client = host.Client();
        await HoldFirstBatchAsync(host);

        string[] ids = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => client.SubmitTextAsync($"d{i}").AsTask()));
        await ReleaseWhenQueuedAsync(host, 40);

        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
        }

        Assert.Equal(new[] { 1, 32, 8 }, Probe(host).BatchSizes); // MaxBatchSize 32 by default
    }

    [Fact]
    public async Task GracefulStop_RunsWhatWaitsForABatch_WithoutWaitingForTheTimeout()
    {
        var time = new FakeTimeProvider(); // never advanced: only the stop can run the batch
        AsyncHost host = await StartAsync(o => o.Batching = new BatchQueueOptions { MaxBatchSize = 8, BatchTimeout = TimeSpan.FromSeconds(10) }, time);
        IAsyncApiClient client = host.Client();
        string[] ids = [await client.SubmitTextAsync("s1"), await client.SubmitTextAsync("s2"), await client.SubmitTextAsync("s3")];
        await Eventually.WaitUntilAsync(() => Api(host).BatchQueuedSize == 3, Wait, "the requests to wait for their batch");
        Assert.Equal(0, Probe(host).Batches);

        using (var shutdownTimeout = new CancellationTokenSource(Wait))
        {
            await host.Host.StopAsync(shutdownTimeout.Token).WaitAsync(Wait);
        }

        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.Completed, (await client.GetStatusAsync(id)).State);
        }

        Assert.Equal(new[] { 3 }, Probe(host).BatchSizes);
        await host.DisposeAsync();
    }

    [Fact]
    public async Task StopOutOfTime_CancelsTheRunningBatch_AbandonsItAndWhatWaits()
    {
        AsyncHost host = await StartAsync(o => (o.Batching, o.AbandonTimeout) = (new BatchQueueOptions { MaxBatchSize = 2 }, TimeSpan.FromSeconds(5)));
        IAsyncApiClient client = host.Client();
        string running = await HoldFirstBatchAsync(host);
        string[] waiting = [await client.SubmitTextAsync("w1"), await client.SubmitTextAsync("w2")];
        await Eventually.WaitUntilAsync(() => Api(host).BatchQueuedSize == 2, Wait, "the requests to wait for their batch");

        using (var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await host.Host.StopAsync(shutdownTimeout.Token).WaitAsync(Wait);
        }

        AsyncRequestStatus runningStatus = await client.GetStatusAsync(running);
        if (Durable)
        {
            // Kept for the next start: the store still reads them unfinished.
            Assert.Equal(AsyncRequestState.InProgress, runningStatus.State);
            foreach (string id in waiting)
            {
                Assert.Equal(AsyncRequestState.InQueue, (await client.GetStatusAsync(id)).State);
            }
        }
        else
        {
            Assert.Equal(AsyncRequestState.Failed, runningStatus.State);
            Assert.Equal("The host shut down before the request finished (it was cancelled while running).", runningStatus.Error);
            foreach (string id in waiting)
            {
                AsyncRequestStatus status = await client.GetStatusAsync(id);
                Assert.Equal(AsyncRequestState.Failed, status.State);
                Assert.Equal("The host shut down before the request finished (it never ran).", status.Error);
            }
        }

        Assert.Equal(new[] { 1 }, Probe(host).BatchSizes); // the waiting ones never reached the handler
        await host.DisposeAsync();
    }

    private static BatchProbe Probe(AsyncHost host) => host.Host.Services.GetRequiredService<BatchProbe>();

    private static AsyncApi Api(AsyncHost host) => host.Host.Services.GetRequiredKeyedService<AsyncApi>(AsyncApiOptions.DefaultName);

    /// <summary>Submits "gate" and waits until its batch of one runs in the handler, held there until the probe's gate opens; returns its id.</summary>
    private static async Task<string> HoldFirstBatchAsync(AsyncHost host)
    {
        string id = await host.Client().SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(() => Probe(host).Batches == 1, Wait, "the first batch to start");
        return id;
    }

    /// <summary>Waits until <paramref name="count"/> requests wait for a batch behind the held one, then lets the held batch go.</summary>
    private static async Task ReleaseWhenQueuedAsync(AsyncHost host, int count)
    {
        await Eventually.WaitUntilAsync(() => Api(host).BatchQueuedSize == count, Wait, $"{count} request(s) to wait for a batch");
        Probe(host).Gate.SetResult();
    }

    private Task<AsyncHost> StartAsync(Action<AsyncApiOptions>? configure = null, FakeTimeProvider? time = null) =>
        AsyncHost.StartAsync(
            s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>(o =>
            {
                UseStore(o);
                configure?.Invoke(o);
            }),
            time);
}
