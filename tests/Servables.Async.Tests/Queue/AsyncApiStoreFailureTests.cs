using Servables.Testing;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async.Tests.Queue;

/// <summary>A result store that fails: at submit nothing unstored is accepted; in a lane the outcome is retried, then reported failed, never left unfinished.</summary>
public sealed class AsyncApiStoreFailureTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("servables-store-failure-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task SubmitAsync_SqliteDatabaseFull_ThrowsStoreUnavailableNamingApiAndRequest_NothingAccepted()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("full", o => UseLimitedSqlite(o, "full", 128 * 1024)));
        IAsyncApiClient client = host.Client("full");
        string blocker = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blocker)).State == AsyncRequestState.InProgress);

        // Queued payloads fill the file (the lane is held, so none is dropped by a completion).
        byte[] chunk = RandomNumberGenerator.GetBytes(16 * 1024);
        var accepted = new List<string>();
        AsyncStoreUnavailableException? refused = null;
        string? refusedId = null;
        for (int i = 0; i < 32 && refused is null; i++)
        {
            try
            {
                accepted.Add(await client.SubmitAsync(chunk, "application/octet-stream", $"chunk-{i}"));
            }
            catch (AsyncStoreUnavailableException ex)
            {
                (refused, refusedId) = (ex, $"chunk-{i}");
            }
        }

        Assert.NotNull(refused);
        Assert.InRange(accepted.Count, 1, 8);
        Assert.Equal(("full", refusedId), (refused.ApiName, refused.RequestId));
        Assert.Contains("async API 'full'", refused.Message, StringComparison.Ordinal);
        Assert.Contains(refusedId!, refused.Message, StringComparison.Ordinal);
        Assert.Equal(13, Assert.IsType<SqliteException>(refused.InnerException).SqliteErrorCode); // SQLITE_FULL
        Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync(refusedId!)).State);

        // What was accepted runs and completes, though the full file may refuse to mark one in progress (that
        // needs a new index page; the mark is advisory): each completion drops a payload, which makes room.
        host.Probe.Gate.SetResult();
        foreach (string id in accepted.Prepend(blocker))
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync(id, Wait);
            Assert.True(done.State == AsyncRequestState.Completed, $"{id}: {done.Status} {done.Error}");
        }

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitAsync(chunk, "application/octet-stream"), Wait)).State);
    }

    [Fact]
    public async Task Lane_SqliteTooFullForTheResult_RetriesThenFailsSayingOutcomeNotStored_LaneGoesOn()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("full", o => UseLimitedSqlite(o, "full", 64 * 1024)));
        IAsyncApiClient client = host.Client("full");

        string big = await client.SubmitTextAsync("big"); // a 300 KB result in a 64 KB file
        AsyncRequestStatus done = await client.WaitForCompletionAsync(big, Wait);

        Assert.Equal(AsyncRequestState.Failed, done.State);
        Assert.Contains("its outcome could not be stored", done.Error, StringComparison.Ordinal);
        Assert.Equal(done.State, (await client.GetStatusAsync(big)).State);
        AsyncRequestRecord stored = (await host.Host.Services.GetRequiredKeyedService<AsyncApi>("full").Store.GetAsync(big))!;
        Assert.Equal(AsyncRequestState.Failed, stored.State); // the short failure fit where the result did not
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("small"), Wait)).State);
    }

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

    [Fact]
    public async Task WaitForCompletionAsync_DurableRequestAbandonedAtShutdown_TimesOutInsteadOfReturningItUnfinished()
    {
        AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.UseSqliteStore(Path.Combine(_folder, "abandon.db"))));
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("slow");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        Task<AsyncRequestStatus> waiting = client.WaitForCompletionAsync(running, TimeSpan.FromMilliseconds(500)).AsTask();

        using (var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
        {
            await host.Host.StopAsync(shutdownTimeout.Token);
        }

        // Released by the abandoned lane, the waiter reads in_progress in the store: it keeps waiting, then times out.
        TimeoutException timedOut = await Assert.ThrowsAsync<TimeoutException>(() => waiting.WaitAsync(Wait));
        Assert.Contains("in_progress", timedOut.Message, StringComparison.Ordinal);
        await host.DisposeAsync();
    }

    private void UseLimitedSqlite(AsyncApiOptions options, string apiName, long maxBytes)
    {
        (options.MaxPayloadBytes, options.StoreRetries, options.StoreRetryDelay) = (1 << 20, 2, TimeSpan.FromMilliseconds(1));
        options.UseSqliteStore(Path.Combine(_folder, apiName + ".db")).SqliteMaxDatabaseBytes = maxBytes;
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
