using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Servables.Async;
using Servables.Testing;

namespace Servables.Sqlite.Tests.Results;

/// <summary>
/// Group commit, driven by hand: another connection holds the file's write lock, so the store's first group waits for
/// it while the test queues more writes behind it; releasing the lock (or not) then decides what the groups do.
/// </summary>
public sealed class SqliteGroupCommitTests : IDisposable
{
    private const int Followers = 63;

    private readonly string _folder = Directory.CreateTempSubdirectory("servables-group-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        foreach (string file in Directory.EnumerateFiles(_folder, "*-wal"))
        {
            Hosting.ReadOnlyFileTests.Chattr("-i", file); // set by the read-only test; an immutable file cannot be deleted
        }

        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task LoneCaller_CommitsAtOnceOnItsOwnThread_NoTimerNoHandOff()
    {
        await using SqliteAsyncResultStore store = Open("lone.db");
        for (int i = 0; i < 20; i++)
        {
            ValueTask<bool> adding = store.TryAddAsync(Request($"r{i}"));
            Assert.True(adding.IsCompletedSuccessfully); // committed and flushed before the call returned
            Assert.True(await adding);
            ValueTask<bool> completing = store.TryCompleteAsync($"r{i}", "{}", _time.GetUtcNow());
            Assert.True(completing.IsCompletedSuccessfully);
            Assert.True(await completing);
        }

        Assert.Equal((40L, 40L), (store.Groups, store.FlushedGroups)); // one group, one flush, per write
    }

    [Fact]
    public async Task WritesArrivingDuringACommit_CommitTogetherInTheNextGroup_EachAfterItsCommit()
    {
        await using SqliteAsyncResultStore store = Open("group.db");
        Assert.True(await store.TryAddAsync(Request("warm-up")));
        long groupsBefore = store.Groups;

        using SqliteConnection locker = LockFile("group.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        var followers = new List<Task<bool>>();
        for (int i = 0; i < Followers; i++)
        {
            followers.Add(i % 3 == 2
                ? store.TryMarkInProgressAsync("warm-up", _time.GetUtcNow()).AsTask() // only the first of these finds it queued
                : store.TryAddAsync(Request($"f{i}")).AsTask());
        }

        Assert.Equal(Followers, store.PendingWrites);
        Assert.False(leader.IsCompleted);
        Assert.DoesNotContain(followers, f => f.IsCompleted); // nobody hears before the commit

        Release(locker);
        Assert.True(await leader.WaitAsync(TimeSpan.FromSeconds(10)));
        bool[] results = await Task.WhenAll(followers).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(2, store.Groups - groupsBefore); // the leader's group, then every follower in one
        Assert.Equal(1, results.Where((_, i) => i % 3 == 2).Count(r => r));
        Assert.All(results.Where((_, i) => i % 3 != 2), Assert.True);
        Assert.Equal(1 + 1 + (Followers - (Followers / 3)), CountRows("group.db"));
    }

    [Fact]
    public async Task LockHeldPastLockTimeout_EveryWriteOfTheGroupFails_NoneInTheFile_ThenTheStoreGoesOn()
    {
        using var logs = new CapturingLoggerProvider();
        // 3 s: the leader's wait must be long enough for the test to see it begin even on a loaded machine.
        await using SqliteAsyncResultStore store = Open("busy.db", lockTimeout: TimeSpan.FromSeconds(3), logger: logs.CreateLogger("sqlite"));
        Assert.Contains(logs.Entries, e => e.EventId.Id == 600 && e.Message.Contains("busy.db", StringComparison.Ordinal));
        using SqliteConnection locker = LockFile("busy.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        Task<bool>[] group = [.. Enumerable.Range(0, 10).Select(i => store.TryAddAsync(Request($"g{i}")).AsTask())];

        foreach (Task<bool> write in group.Prepend(leader))
        {
            SqliteException error = await Assert.ThrowsAsync<SqliteException>(() => write.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(5, error.SqliteErrorCode); // SQLITE_BUSY
        }

        Release(locker);
        Assert.Equal(0, CountRows("busy.db"));
        Assert.Contains(logs.Entries, e => e.EventId.Id == 601 && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("a group of 10 write(s)", StringComparison.Ordinal));
        Assert.True(await store.TryAddAsync(Request("after")));
        Assert.Equal(1, CountRows("busy.db"));
    }

    [Fact]
    public async Task FileFillsDuringAGroup_TheWritesThatDoNotFitFail_TheOthersAreCommitted_NothingAcceptedIsMissing()
    {
        await using SqliteAsyncResultStore store = Open("full.db", maxBytes: 128 * 1024);
        using SqliteConnection locker = LockFile("full.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        byte[] chunk = RandomNumberGenerator.GetBytes(16 * 1024);
        Task<bool>[] group = [.. Enumerable.Range(0, 20).Select(i => store.TryAddAsync(Request($"c{i}") with { Payload = chunk }).AsTask())];
        Release(locker);

        Assert.True(await leader.WaitAsync(TimeSpan.FromSeconds(10)));
        var accepted = new List<string> { "leader" };
        var refused = new List<string>();
        for (int i = 0; i < group.Length; i++)
        {
            try
            {
                Assert.True(await group[i].WaitAsync(TimeSpan.FromSeconds(10)));
                accepted.Add($"c{i}");
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == 13) // SQLITE_FULL
            {
                refused.Add($"c{i}");
            }
        }

        Assert.InRange(accepted.Count, 2, 10);
        Assert.NotEmpty(refused);
        await using SqliteAsyncResultStore reader = Open("full.db");
        foreach (string id in accepted)
        {
            Assert.Equal(AsyncRequestState.InQueue, (await reader.GetAsync(id))?.State);
        }

        foreach (string id in refused)
        {
            Assert.Null(await reader.GetAsync(id));
        }
    }

    [SkippableFact]
    public async Task FileTurnsReadOnlyDuringAGroup_EveryWriteOfTheGroupFails_NoneInTheFile_ThenTheStoreGoesOn()
    {
        (bool can, string reason) = Hosting.ReadOnlyFileTests.CanMakeImmutable(_folder);
        Skip.IfNot(can, reason);
        await using SqliteAsyncResultStore store = Open("ro.db");
        Assert.True(await store.TryAddAsync(Request("before")));
        using SqliteConnection locker = LockFile("ro.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        Task<bool>[] group = [.. Enumerable.Range(0, 10).Select(i => store.TryAddAsync(Request($"g{i}")).AsTask())];
        string wal = Path.Combine(_folder, "ro.db-wal");
        Assert.Equal(0, Hosting.ReadOnlyFileTests.Chattr("+i", wal).Exit); // the write-ahead log now refuses every write, as a file system remounted read-only does
        Assert.Equal(10, store.PendingWrites); // the next group, queued behind the leader's
        Release(locker);

        foreach (Task<bool> write in group.Prepend(leader))
        {
            SqliteException error = await Assert.ThrowsAsync<SqliteException>(() => write.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal(10, error.SqliteErrorCode); // SQLITE_IOERR
        }

        Assert.Equal(0, Hosting.ReadOnlyFileTests.Chattr("-i", wal).Exit);
        Assert.Equal(1, CountRows("ro.db"));
        Assert.True(await store.TryAddAsync(Request("after")));
        Assert.Equal(2, CountRows("ro.db"));
    }

    [Fact]
    public async Task CancelledWhileWaitingForItsGroup_NotWritten_OthersOfTheGroupAre()
    {
        await using SqliteAsyncResultStore store = Open("cancel.db");
        using SqliteConnection locker = LockFile("cancel.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        using var cancel = new CancellationTokenSource();
        Task<bool> cancelled = store.TryAddAsync(Request("cancelled"), cancel.Token).AsTask();
        Task<bool> kept = store.TryAddAsync(Request("kept")).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);

        Release(locker);
        Assert.True(await leader.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await kept.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Null(await store.GetAsync("cancelled"));
        Assert.NotNull(await store.GetAsync("kept"));
    }

    [Fact]
    public async Task MarkAndFinishOfOneRequestInOneGroup_CommitTheFinish_OtherMarksStillApply()
    {
        await using SqliteAsyncResultStore store = Open("moot.db");
        Assert.True(await store.TryAddAsync(Request("done")));
        Assert.True(await store.TryAddAsync(Request("running")));
        using SqliteConnection locker = LockFile("moot.db");
        Task<bool> leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
        await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
        DateTimeOffset marked = _time.GetUtcNow();
        Task<bool> markDone = store.TryMarkInProgressAsync("done", marked).AsTask(); // a lane's mark, then its outcome: one group
        Task<bool> complete = store.TryCompleteAsync("done", "{\"y\":1}", marked.AddSeconds(1)).AsTask();
        Task<bool> markRunning = store.TryMarkInProgressAsync("running", marked).AsTask();

        Release(locker);
        Assert.True(await leader.WaitAsync(TimeSpan.FromSeconds(10)));
        bool[] results = await Task.WhenAll(markDone, complete, markRunning).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new[] { true, true, true }, results);

        AsyncRequestRecord done = (await store.GetAsync("done"))!;
        Assert.Equal((AsyncRequestState.Completed, "{\"y\":1}", marked.AddSeconds(1)), (done.State, done.ResultJson, done.UpdatedAt));
        Assert.Equal(AsyncRequestState.InProgress, (await store.GetAsync("running"))!.State);
        Assert.False(await store.TryMarkInProgressAsync("done", marked)); // finished: a later mark changes nothing
    }

    [Fact]
    public async Task DisposeAsync_WithWritesQueued_CommitsThemFirst()
    {
        SqliteAsyncResultStore store = Open("dispose.db");
        Task<bool> leader;
        Task<bool> queued;
        using (SqliteConnection locker = LockFile("dispose.db"))
        {
            leader = Task.Run(() => store.TryAddAsync(Request("leader")).AsTask());
            await Eventually.WaitUntilAsync(() => store.IsCommitting && store.PendingWrites == 0, TimeSpan.FromSeconds(10), "the leader to begin its group");
            queued = store.TryAddAsync(Request("queued")).AsTask();
            Task disposing = store.DisposeAsync().AsTask();
            Assert.False(disposing.IsCompleted);
            Release(locker);
            await disposing.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.True(await leader);
        Assert.True(await queued);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await store.TryAddAsync(Request("late")));
        Assert.Equal(2, CountRows("dispose.db"));
    }

    private AsyncRequestRecord Request(string id) => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "text/plain",
        Payload = "x"u8.ToArray(),
        SubmittedAt = _time.GetUtcNow(),
        UpdatedAt = _time.GetUtcNow(),
    };

    private SqliteAsyncResultStore Open(string file, long? maxBytes = null, TimeSpan? lockTimeout = null, Microsoft.Extensions.Logging.ILogger? logger = null) => new(
        new SqliteAsyncResultStoreOptions { DatabasePath = Path.Combine(_folder, file), ApiName = "api", MaxDatabaseBytes = maxBytes, LockTimeout = lockTimeout ?? TimeSpan.FromSeconds(30) },
        new AsyncResultStoreOptions { TimeProvider = _time },
        logger);

    /// <summary>Another connection takes the file's write lock (BEGIN IMMEDIATE) and holds it until <see cref="Release"/>.</summary>
    private SqliteConnection LockFile(string file)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_folder, file), Pooling = false }.ToString());
        connection.Open();
        using SqliteCommand begin = connection.CreateCommand();
        begin.CommandText = "BEGIN IMMEDIATE";
        begin.ExecuteNonQuery();
        return connection;
    }

    private static void Release(SqliteConnection locker)
    {
        using SqliteCommand rollback = locker.CreateCommand();
        rollback.CommandText = "ROLLBACK";
        rollback.ExecuteNonQuery();
    }

    private long CountRows(string file)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_folder, file), Pooling = false, Mode = SqliteOpenMode.ReadOnly }.ToString());
        connection.Open();
        using SqliteCommand count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM async_requests";
        return (long)count.ExecuteScalar()!;
    }
}
