using Servables.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async.Tests.Queue;

/// <summary>A result store that fails (the SQLite store's own failures are tested in Servables.Sqlite.Tests): at submit nothing unstored is accepted; in a lane the outcome is retried, then reported failed, never left unfinished.</summary>
public sealed class AsyncApiStoreFailureTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Lane_StoreRefusesEveryWrite_RequestsReportedFailedInProcess_NeverLeftUnfinished()
    {
        var store = new BreakableStore();
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => (o.StoreRetries, o.StoreRetryDelay, o.StoreFactory) =
            (2, TimeSpan.FromMilliseconds(1), (_, so) => store.Open(so))));
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        string queued = await client.SubmitTextAsync("x");

        store.Broken = true; // every state change throws from now on; reads still work
        host.Probe.Gate.SetResult();

        foreach (string id in new[] { running, queued })
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync(id, Wait);
            Assert.Equal(AsyncRequestState.Failed, done.State);
            Assert.Contains("could not be stored", done.Error, StringComparison.Ordinal);
            Assert.Contains("disk gone", done.Error, StringComparison.Ordinal);
            Assert.Equal(done, await client.GetStatusAsync(id));
        }

        Assert.Equal(3, store.Attempts.Count(a => a == $"complete {running}")); // the first try and 2 retries
        Assert.Equal(1, store.Attempts.Count(a => a == $"start {queued}")); // a mark in progress is advisory: not retried, and the request ran
        Assert.Contains(queued, host.Probe.StartedIds);
    }

    [Fact]
    public async Task CancelAsync_QueuedRequestStoreRefusesTheFailure_ReportedFailedInProcess_NeverRuns()
    {
        var store = new BreakableStore();
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, so) => store.Open(so)));
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        string queued = await client.SubmitTextAsync("x");

        store.Broken = true;
        Assert.True(await client.CancelAsync(queued));
        store.Broken = false;
        host.Probe.Gate.SetResult();

        AsyncRequestStatus cancelled = await client.WaitForCompletionAsync(queued, Wait);
        Assert.Equal(AsyncRequestState.Failed, cancelled.State);
        Assert.StartsWith("Cancelled by the caller before it ran. The result store could not record the cancel", cancelled.Error, StringComparison.Ordinal);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(running, Wait)).State);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State);
        Assert.DoesNotContain(queued, host.Probe.StartedIds);
    }

    /// <summary>An in-memory store behind the plain store interface whose state changes throw once broken, as a store on a vanished disk would.</summary>
    private sealed class BreakableStore
    {
        private IAsyncResultStore? _inner;

        public volatile bool Broken;

        public System.Collections.Concurrent.ConcurrentQueue<string> Attempts { get; } = new();

        public IAsyncResultStore Open(AsyncResultStoreOptions options)
        {
            _inner = new InMemoryAsyncResultStore(options);
            return new Store(this);
        }

        private ValueTask<bool> Write(string what, Func<IAsyncResultStore, ValueTask<bool>> write)
        {
            Attempts.Enqueue(what);
            return Broken ? ValueTask.FromException<bool>(new IOException("disk gone")) : write(_inner!);
        }

        private sealed class Store(BreakableStore owner) : IAsyncResultStore
        {
            public bool IsDurable => false;

            public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => owner.Write($"add {request.Id}", s => s.TryAddAsync(request, cancellationToken));

            public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => owner._inner!.GetAsync(requestId, includePayload, cancellationToken);

            public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => owner.Write($"start {requestId}", s => s.TryMarkInProgressAsync(requestId, at, cancellationToken));

            public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => owner.Write($"complete {requestId}", s => s.TryCompleteAsync(requestId, resultJson, at, cancellationToken));

            public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => owner.Write($"fail {requestId}", s => s.TryFailAsync(requestId, errorText, at, cancellationToken));

            public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => owner._inner!.GetUnfinishedAsync(cancellationToken);

            public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => owner._inner!.RemoveExpiredAsync(cancellationToken);

            public ValueTask DisposeAsync() => owner._inner!.DisposeAsync();
        }
    }
}
