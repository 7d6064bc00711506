using Servables.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async.Tests.Queue;

/// <summary>The API over a store that is only an <see cref="IAsyncResultStore"/> (the request table beside the store), where a cancel races the start.</summary>
public sealed class StoreRequestTableTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task CancelAsync_LaneStartsTheRequestMeanwhile_NeverFailsAStartedRequestAsBeforeItRan()
    {
        CancelRaceStore? store = null;
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, so) => store = new CancelRaceStore(new InMemoryAsyncResultStore(so))));
        IAsyncApiClient client = host.Client();
        string blocker = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blocker)).State == AsyncRequestState.InProgress);
        string raced = await client.SubmitTextAsync("slow"); // runs until cancelled, if it runs

        // A read of the request by the cancel returns only once the lane has marked it in progress:
        // the widest form of the window between the cancel's look and its change.
        store!.HoldNextReadUntilStarted(raced);
        Task<bool> cancel = client.CancelAsync(raced).AsTask();
        host.Probe.Gate.SetResult();
        bool cancelled = await cancel.WaitAsync(Wait);

        AsyncRequestStatus done = await client.WaitForCompletionAsync(raced, Wait);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State); // one lane: done with the raced one
        bool ran = host.Probe.StartedIds.Contains(raced);
        Assert.Equal(AsyncRequestState.Failed, done.State);
        Assert.Equal(ran ? "Cancelled by the caller while it ran." : "Cancelled by the caller before it ran.", done.Error);
        Assert.True(cancelled);
    }

    [Fact]
    public async Task CancelAsync_RacingStartsManyTimes_StartedRequestsNeverFailAsBeforeItRan()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => (o.WorkerCount, o.QueueCapacity, o.StoreFactory) =
            (2, 1_000, (_, so) => new Results.ForwardingResultStore(new InMemoryAsyncResultStore(so)))));
        IAsyncApiClient client = host.Client();
        string[] ids = await Task.WhenAll(Enumerable.Range(0, 400).Select(i => client.SubmitTextAsync($"r{i}").AsTask()));
        bool[] cancelled = await Task.WhenAll(ids.Select(id => Task.Run(async () => await client.CancelAsync(id))));

        foreach ((string id, int i) in ids.Select((id, i) => (id, i)))
        {
            // A cancel that lost finds nothing to cancel; one that won fails the request, unless it reached a
            // running handler, which ignores its token here and completes.
            AsyncRequestStatus done = await client.WaitForCompletionAsync(id, Wait);
            Assert.True(cancelled[i] || done.State == AsyncRequestState.Completed, $"{id}: {done.Status} {done.Error}");
        }

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State);
        IReadOnlyList<string> started = host.Probe.StartedIds;
        foreach (string id in ids)
        {
            AsyncRequestStatus done = await client.GetStatusAsync(id);
            if (done.Error == "Cancelled by the caller before it ran.")
            {
                Assert.DoesNotContain(id, started);
            }
        }
    }

    /// <summary>An in-memory store behind the plain store interface, which can hold one read of a request until a lane marks it in progress.</summary>
    private sealed class CancelRaceStore(IAsyncResultStore inner) : IAsyncResultStore
    {
        private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private string? _held;
        private string? _awaited;

        public bool IsDurable => inner.IsDurable;

        public void HoldNextReadUntilStarted(string requestId)
        {
            Volatile.Write(ref _awaited, requestId);
            Volatile.Write(ref _held, requestId);
        }

        public async ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
        {
            AsyncRequestRecord? record = await inner.GetAsync(requestId, includePayload, cancellationToken);
            if (Interlocked.CompareExchange(ref _held, null, requestId) == requestId)
            {
                await _started.Task.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            }

            return record;
        }

        public async ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            bool marked = await inner.TryMarkInProgressAsync(requestId, at, cancellationToken);
            if (requestId == Volatile.Read(ref _awaited))
            {
                _started.TrySetResult();
            }

            return marked;
        }

        public async ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            Volatile.Write(ref _held, null); // a cancel that never read first needs no hold
            return await inner.TryFailAsync(requestId, errorText, at, cancellationToken);
        }

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
