using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Servables.Async;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Sqlite.Tests.Hosting;

/// <summary><c>UseSqliteStore</c> end to end: an API over the SQLite store, its options, and what a full or failing file does to submits and lanes.</summary>
public sealed class UseSqliteStoreTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("servables-use-sqlite-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task UseSqliteStore_SubmitAndComplete_StoredInTheFileUnderTheApisName()
    {
        string db = Path.Combine(_folder, "shared.db");
        await using (AsyncHost host = await AsyncHost.StartAsync(s => s
            .AddAsyncHandler<EchoHandler>("one", o => o.UseSqliteStore(db))
            .AddAsyncHandler<EchoHandler>("two", o => o.UseSqliteStore(db))))
        {
            string id = await host.Client("one").SubmitTextAsync("hello", requestId: "same-id");
            Assert.Equal("same-id", await host.Client("two").SubmitTextAsync("other", requestId: "same-id")); // each API's rows are its own
            AsyncRequestStatus done = await host.Client("one").WaitForCompletionAsync(id, Wait);
            Assert.Equal(AsyncRequestState.Completed, done.State);
            Assert.Contains("\"text\":\"hello\"", done.ResultJson, StringComparison.Ordinal);
            Assert.Contains("\"text\":\"other\"", (await host.Client("two").WaitForCompletionAsync(id, Wait)).ResultJson, StringComparison.Ordinal);
        }

        // The host is gone; the file still answers, for each API under its name.
        foreach (string api in new[] { "one", "two" })
        {
            await using var store = new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = db, ApiName = api });
            AsyncRequestRecord record = (await store.GetAsync("same-id"))!;
            Assert.Equal(AsyncRequestState.Completed, record.State);
            Assert.Contains($"\"api\":\"{api}\"", record.ResultJson, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task UseSqliteStore_QueuedAtStop_RunsAfterRestart()
    {
        string db = Path.Combine(_folder, "restart.db");
        string running, queued;
        AsyncHost first = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.UseSqliteStore(db)));
        try
        {
            running = await first.Client().SubmitTextAsync("gate");
            await Eventually.WaitUntilAsync(async () => (await first.Client().GetStatusAsync(running)).State == AsyncRequestState.InProgress);
            queued = await first.Client().SubmitTextAsync("later");
            using var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
            await first.Host.StopAsync(shutdownTimeout.Token); // the gate never opens: both are abandoned, kept in the file
        }
        finally
        {
            await first.DisposeAsync();
        }

        await using AsyncHost second = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.UseSqliteStore(db)));
        second.Probe.Gate.SetResult();
        Assert.Equal(AsyncRequestState.Completed, (await second.Client().WaitForCompletionAsync(running, Wait)).State); // run again: at-least-once
        AsyncRequestStatus done = await second.Client().WaitForCompletionAsync(queued, Wait);
        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Contains("\"text\":\"later\"", done.ResultJson, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restart_MoreUnfinishedThanTheQueueHolds_RecoveredAPageAtATimeWithinQueueCapacity_AllComplete()
    {
        string db = Path.Combine(_folder, "backlog.db");
        var time = new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
        await using (var seed = new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = db }))
        {
            Assert.True(await seed.TryAddAsync(Record("gate-0", "gate", time)));
            for (int i = 1; i < 50; i++)
            {
                Assert.True(await seed.TryAddAsync(Record($"r-{i}", $"r{i}", time.AddTicks(i))));
            }
        }

        var pages = new List<int>();
        bool readAll = false;
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o =>
        {
            o.QueueCapacity = 4;
            o.UseSqliteStore(db);
            Func<IServiceProvider, AsyncResultStoreOptions, IAsyncResultStore> sqlite = o.StoreFactory!;
            o.StoreFactory = (services, storeOptions) => new PageWatchingStore(sqlite(services, storeOptions), pages, () => readAll = true);
        }));
        IAsyncApiClient client = host.Client();

        // The one lane holds the gate; the queue's 4 slots hold recovered requests, so a new submit is refused as full.
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync("gate-0")).State == AsyncRequestState.InProgress);
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                await client.SubmitTextAsync("new");
                return false;
            }
            catch (AsyncQueueFullException)
            {
                return true;
            }
        });
        lock (pages)
        {
            Assert.InRange(pages.Sum(), 4, 4 + 4); // the first page (the gate and the queued), and at most one page read ahead
        }

        host.Probe.Gate.SetResult();
        for (int i = 1; i < 50; i++)
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync($"r-{i}", Wait);
            Assert.Contains($"\"text\":\"r{i}\"", done.ResultJson, StringComparison.Ordinal);
        }

        lock (pages)
        {
            Assert.All(pages, p => Assert.InRange(p, 0, 4));
        }

        Assert.False(readAll); // never every unfinished payload at once
    }

    private static AsyncRequestRecord Record(string id, string text, DateTimeOffset at) => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "text/plain",
        Payload = System.Text.Encoding.UTF8.GetBytes(text),
        SubmittedAt = at,
        UpdatedAt = at,
    };

    /// <summary>The SQLite store, noting the size of each page of unfinished requests read from it, and any read of them all.</summary>
    private sealed class PageWatchingStore(IAsyncResultStore inner, List<int> pages, Action onReadAll) : IAsyncResultStore
    {
        public bool IsDurable => inner.IsDurable;

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

        public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => inner.GetAsync(requestId, includePayload, cancellationToken);

        public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryMarkInProgressAsync(requestId, at, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

        public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryFailAsync(requestId, errorText, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
        {
            onReadAll();
            return inner.GetUnfinishedAsync(cancellationToken);
        }

        public async ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken = default)
        {
            IReadOnlyList<AsyncRequestRecord> page = await inner.GetUnfinishedPageAsync(afterId, maxCount, cancellationToken);
            lock (pages)
            {
                pages.Add(page.Count);
            }

            return page;
        }

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    [Fact]
    public void UseSqliteStore_InvalidArguments_ThrowAtOnceNamingTheProblem()
    {
        var options = new AsyncApiOptions();
        Assert.Throws<ArgumentException>(() => options.UseSqliteStore(""));
        Assert.Throws<ArgumentNullException>(() => options.UseSqliteStore(null!));
        ArgumentException tooSmall = Assert.Throws<ArgumentException>(() => options.UseSqliteStore("x.db", sqlite => sqlite.MaxDatabaseBytes = 1024));
        Assert.Contains("MaxDatabaseBytes must be at least 64 KiB", tooSmall.Message, StringComparison.Ordinal);
        Assert.Null(options.StoreFactory); // nothing was selected

        Assert.Same(options, options.UseSqliteStore("x.db"));
        Assert.NotNull(options.StoreFactory);
    }

    [Fact]
    public void SqliteOptions_MaxDatabaseBytesBelow64KiB_Invalid()
    {
        Assert.Contains(new SqliteAsyncResultStoreOptions { DatabasePath = "x.db", MaxDatabaseBytes = 65_535 }.Validate(), e => e.StartsWith("MaxDatabaseBytes must be at least 64 KiB", StringComparison.Ordinal));
        Assert.Empty(new SqliteAsyncResultStoreOptions { DatabasePath = "x.db", MaxDatabaseBytes = 65_536 }.Validate());
        Assert.Null(new SqliteAsyncResultStoreOptions().MaxDatabaseBytes);
    }

    [Fact]
    public async Task UseSqliteStore_FolderMissing_HostStartFailsNamingThePath()
    {
        string db = Path.Combine(_folder, "missing", "x.db");
        DirectoryNotFoundException error = await Assert.ThrowsAsync<DirectoryNotFoundException>(() =>
            AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.UseSqliteStore(db))));
        Assert.Contains(db, error.Message, StringComparison.Ordinal);
    }

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
        await using (SqliteAsyncResultStore reader = new(new SqliteAsyncResultStoreOptions { DatabasePath = Path.Combine(_folder, "full.db"), ApiName = "full" }))
        {
            Assert.Equal(AsyncRequestState.Failed, (await reader.GetAsync(big))!.State); // the short failure fit where the result did not
        }

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("small"), Wait)).State);
    }

    [Fact]
    public async Task SubmitAsync_ManyConcurrentSubmittersFillTheFile_EachAcceptedOrRefusedWithStoreUnavailable_NothingAcceptedMissing()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("full", o => UseLimitedSqlite(o, "full", 256 * 1024)));
        IAsyncApiClient client = host.Client("full");
        string blocker = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blocker)).State == AsyncRequestState.InProgress);

        // 64 submitters at once: they commit in groups, and the file fills during one.
        byte[] chunk = RandomNumberGenerator.GetBytes(16 * 1024);
        Task<string>[] submits = [.. Enumerable.Range(0, 64).Select(i => Task.Run(() => client.SubmitAsync(chunk, "application/octet-stream", $"c-{i}").AsTask()))];
        var accepted = new List<string>();
        var refused = new List<string>();
        for (int i = 0; i < submits.Length; i++)
        {
            try
            {
                accepted.Add(await submits[i].WaitAsync(Wait));
            }
            catch (AsyncStoreUnavailableException ex)
            {
                Assert.Equal($"c-{i}", ex.RequestId);
                Assert.Equal(13, Assert.IsType<SqliteException>(ex.InnerException).SqliteErrorCode); // SQLITE_FULL
                refused.Add(ex.RequestId);
            }
        }

        Assert.NotEmpty(accepted);
        Assert.NotEmpty(refused);
        await using (SqliteAsyncResultStore reader = new(new SqliteAsyncResultStoreOptions { DatabasePath = Path.Combine(_folder, "full.db"), ApiName = "full" }))
        {
            foreach (string id in accepted)
            {
                Assert.Equal(AsyncRequestState.InQueue, (await reader.GetAsync(id))?.State);
            }

            foreach (string id in refused)
            {
                Assert.Null(await reader.GetAsync(id));
                Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync(id)).State);
            }
        }

        host.Probe.Gate.SetResult();
        foreach (string id in accepted)
        {
            Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
        }
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
        options.UseSqliteStore(Path.Combine(_folder, apiName + ".db"), sqlite => sqlite.MaxDatabaseBytes = maxBytes);
    }
}
