using System.Text;
using Microsoft.Data.Sqlite;

using Servables.Async;
using Servables.Async.Tests.Results;

namespace Servables.Sqlite.Tests.Results;

public sealed class SqliteAsyncResultStoreTests : ResultStoreContractTests
{
    // Not valid UTF-8 (a lone 0xFF, a truncated sequence) and a NUL: bytes must come back as given.
    private static readonly byte[] BinaryPayload = [0xFF, 0xFE, 0x00, 0x80, 0xC3, 0x28, 0x0A, 0xF0];

    private readonly string _folder = Directory.CreateTempSubdirectory("servables-sqlite-").FullName;

    protected override IAsyncResultStore CreateStore(AsyncResultStoreOptions options) =>
        new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = Path.Combine(_folder, "contract.db"), ApiName = "contract" }, options);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task Reopen_SameFile_KeepsQueuedInProgressAndCompletedRows()
    {
        DateTimeOffset markedAt;
        DateTimeOffset completedAt;
        await using (SqliteAsyncResultStore store = Open("reopen.db"))
        {
            Assert.True(await store.TryAddAsync(NewRequest("queued") with { ContentType = "application/octet-stream", Payload = BinaryPayload }));
            Time.Advance(TimeSpan.FromSeconds(1));
            Assert.True(await store.TryAddAsync(NewRequest("running", "2")));
            Assert.True(await store.TryAddAsync(NewRequest("done", "3")));
            Time.Advance(TimeSpan.FromSeconds(1));
            markedAt = Time.GetUtcNow();
            Assert.True(await store.TryMarkInProgressAsync("running", markedAt));
            Assert.True(await store.TryMarkInProgressAsync("done", markedAt));
            Time.Advance(TimeSpan.FromSeconds(1));
            completedAt = Time.GetUtcNow();
            Assert.True(await store.TryCompleteAsync("done", "{\"ok\":true}", completedAt));
        }

        await using SqliteAsyncResultStore reopened = Open("reopen.db");

        // What a restart runs again, the in-progress request included (at-least-once).
        IReadOnlyList<AsyncRequestRecord> unfinished = await reopened.GetUnfinishedAsync();
        Assert.Equal(["queued", "running"], unfinished.Select(r => r.Id));
        Assert.Equal([AsyncRequestState.InQueue, AsyncRequestState.InProgress], unfinished.Select(r => r.State));
        Assert.Equal(BinaryPayload, unfinished[0].Payload.ToArray());
        Assert.Equal("application/octet-stream", unfinished[0].ContentType);
        Assert.Equal("2", Encoding.UTF8.GetString(unfinished[1].Payload.Span));
        Assert.Equal(markedAt, unfinished[1].UpdatedAt);
        Assert.Equal(markedAt - TimeSpan.FromSeconds(1), unfinished[1].SubmittedAt);

        AsyncRequestRecord done = (await reopened.GetAsync("done", includePayload: true))!;
        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("{\"ok\":true}", done.ResultJson);
        Assert.Equal(completedAt, done.UpdatedAt);
        Assert.True(done.Payload.IsEmpty); // dropped on completion
        Assert.False(await reopened.TryFailAsync("done", "late", Time.GetUtcNow()));

        // A recovered request finishes normally.
        Assert.True(await reopened.TryCompleteAsync("running", "{}", Time.GetUtcNow()));
    }

    [Fact]
    public async Task TryAddAsync_Returned_RowCommittedWithPayloadForAnotherConnection()
    {
        await using SqliteAsyncResultStore store = Open("committed.db");
        Assert.True(await store.TryAddAsync(NewRequest("a") with { Payload = BinaryPayload }));

        // Another connection sees only committed rows.
        using SqliteConnection reader = OpenRaw("committed.db", SqliteOpenMode.ReadOnly);
        using SqliteCommand command = reader.CreateCommand();
        command.CommandText = "SELECT payload FROM async_requests WHERE api = 'api' AND id = 'a'";
        Assert.Equal(BinaryPayload, (byte[])command.ExecuteScalar()!);
    }

    [Fact]
    public async Task TryMarkInProgressAsync_CommittedForOtherConnections_EveryOtherWriteStillFlushed()
    {
        await using SqliteAsyncResultStore store = Open("mark.db");
        Assert.True(await store.TryAddAsync(NewRequest("r")));
        Assert.True(await store.TryMarkInProgressAsync("r", Time.GetUtcNow()));
        Assert.False(await store.TryMarkInProgressAsync("missing", Time.GetUtcNow()));

        // The mark is committed (another connection sees it) in a group of its own that did not flush; the add's did.
        using (var other = new SqliteConnection($"Data Source={Path.Combine(_folder, "mark.db")}"))
        {
            other.Open();
            using SqliteCommand read = other.CreateCommand();
            read.CommandText = "SELECT state FROM async_requests WHERE id = 'r'";
            Assert.Equal(2L, read.ExecuteScalar());
        }

        Assert.Equal((3L, 1L), (store.Groups, store.FlushedGroups));
        Assert.True(await store.TryCompleteAsync("r", "{}", Time.GetUtcNow()));
        Assert.Equal((4L, 2L), (store.Groups, store.FlushedGroups));
    }

    [Fact]
    public async Task TryAddAsync_EmptyPayload_StoredAndReadBackEmpty()
    {
        await using SqliteAsyncResultStore store = Open("empty.db");
        Assert.True(await store.TryAddAsync(NewRequest("a") with { Payload = ReadOnlyMemory<byte>.Empty }));

        AsyncRequestRecord record = (await store.GetAsync("a", includePayload: true))!;
        Assert.Equal(AsyncRequestState.InQueue, record.State);
        Assert.True(record.Payload.IsEmpty);
    }

    [Fact]
    public async Task GetUnfinishedAsync_SameSubmittedTime_InsertionOrder()
    {
        await using SqliteAsyncResultStore store = Open("order.db");
        foreach (string id in new[] { "c", "a", "d", "b" })
        {
            Assert.True(await store.TryAddAsync(NewRequest(id)));
        }

        Assert.True(await store.TryFailAsync("d", "cancelled", Time.GetUtcNow()));
        Assert.True(await store.TryAddAsync(NewRequest("e")));

        Assert.Equal(["c", "a", "b", "e"], (await store.GetUnfinishedAsync()).Select(r => r.Id));
    }

    [Fact]
    public async Task GetUnfinishedPageAsync_PagesInOrder_SkipsFinished_AfterAnIdThatFinishedMeanwhile()
    {
        await using SqliteAsyncResultStore store = Open("pages.db");
        string[] ids = [.. Enumerable.Range(0, 10).Select(i => $"r{i}")];
        foreach (string id in ids)
        {
            Assert.True(await store.TryAddAsync(NewRequest(id, id)));
        }

        Assert.True(await store.TryCompleteAsync("r4", "{}", Time.GetUtcNow()));
        IReadOnlyList<AsyncRequestRecord> first = await store.GetUnfinishedPageAsync(null, 3);
        Assert.Equal(["r0", "r1", "r2"], first.Select(r => r.Id));
        Assert.Equal("r0", Encoding.UTF8.GetString(first[0].Payload.Span));

        Assert.True(await store.TryCompleteAsync("r2", "{}", Time.GetUtcNow())); // the cursor's own row finishes
        Assert.Equal(["r3", "r5", "r6"], (await store.GetUnfinishedPageAsync("r2", 3)).Select(r => r.Id));
        Assert.Equal(["r7", "r8", "r9"], (await store.GetUnfinishedPageAsync("r6", 3)).Select(r => r.Id));
        Assert.Empty(await store.GetUnfinishedPageAsync("r9", 3));
        Assert.Empty(await store.GetUnfinishedPageAsync("unknown", 3));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.GetUnfinishedPageAsync(null, 0));
    }

    [Fact]
    public async Task TwoApiNames_OneFile_DoNotSeeEachOthersRows()
    {
        await using SqliteAsyncResultStore alpha = Open("shared.db", "alpha");
        await using SqliteAsyncResultStore beta = Open("shared.db", "beta");

        Assert.True(await alpha.TryAddAsync(NewRequest("same-id", "a")));
        Assert.True(await beta.TryAddAsync(NewRequest("same-id", "b")));
        Assert.True(await alpha.TryAddAsync(NewRequest("alpha-only")));

        Assert.Null(await beta.GetAsync("alpha-only"));
        Assert.False(await beta.TryMarkInProgressAsync("alpha-only", Time.GetUtcNow()));
        Assert.False(await beta.TryFailAsync("alpha-only", "x", Time.GetUtcNow()));

        Assert.True(await alpha.TryCompleteAsync("same-id", "1", Time.GetUtcNow()));
        AsyncRequestRecord betaRecord = (await beta.GetAsync("same-id", includePayload: true))!;
        Assert.Equal(AsyncRequestState.InQueue, betaRecord.State);
        Assert.Equal("b", Encoding.UTF8.GetString(betaRecord.Payload.Span));

        Assert.Equal(["alpha-only"], (await alpha.GetUnfinishedAsync()).Select(r => r.Id));
        Assert.Equal(["same-id"], (await beta.GetUnfinishedAsync()).Select(r => r.Id));

        Assert.True(await beta.TryFailAsync("same-id", "x", Time.GetUtcNow()));
        Time.Advance(Retention);
        Assert.Equal(1, await alpha.RemoveExpiredAsync());
        Assert.Equal(1, await beta.RemoveExpiredAsync()); // alpha's cleanup left beta's row alone
    }

    [Fact]
    public async Task TwoStoresOneFile_ConcurrentWriters_AllCommitted()
    {
        await using SqliteAsyncResultStore alpha = Open("busy.db", "alpha");
        await using SqliteAsyncResultStore beta = Open("busy.db", "beta");
        string[] ids = [.. Enumerable.Range(0, 50).Select(i => $"r{i}")];

        await Parallel.ForEachAsync(
            ids.SelectMany(id => new (SqliteAsyncResultStore Store, string Id)[] { (alpha, id), (beta, id) }),
            new ParallelOptions { MaxDegreeOfParallelism = 4 },
            async (work, ct) =>
            {
                Assert.True(await work.Store.TryAddAsync(NewRequest(work.Id), ct));
                Assert.True(await work.Store.TryCompleteAsync(work.Id, "1", Time.GetUtcNow(), ct));
            });

        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.Completed, (await alpha.GetAsync(id))!.State);
            Assert.Equal(AsyncRequestState.Completed, (await beta.GetAsync(id))!.State);
        }
    }

    [Fact]
    public async Task Open_NewFile_CreatesSchemaVersionWalAndIndexes()
    {
        await using (Open("schema.db"))
        {
        }

        using SqliteConnection raw = OpenRaw("schema.db", SqliteOpenMode.ReadOnly);
        Assert.Equal(2L, Scalar(raw, "PRAGMA user_version"));
        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode"));
        Assert.Equal(
            2L,
            Scalar(raw, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('ix_async_requests_unfinished', 'ix_async_requests_finished') AND sql LIKE '% WHERE state IN %'"));
    }

    [Fact]
    public async Task Open_VersionOneFile_MigratesItsIndexes_RowsReadAndRecoveredAsBefore()
    {
        long now = Time.GetUtcNow().UtcTicks;
        using (SqliteConnection raw = OpenRaw("v1.db", SqliteOpenMode.ReadWriteCreate))
        {
            Scalar(raw, $"""
                CREATE TABLE async_requests (
                    seq INTEGER PRIMARY KEY, api TEXT NOT NULL, id TEXT NOT NULL, state INTEGER NOT NULL, content_type TEXT NOT NULL,
                    payload BLOB NOT NULL, result_json TEXT, error TEXT, submitted_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                    UNIQUE (api, id));
                CREATE INDEX ix_async_requests_api_state ON async_requests (api, state, submitted_at);
                CREATE INDEX ix_async_requests_api_updated ON async_requests (api, updated_at);
                INSERT INTO async_requests (api, id, state, content_type, payload, submitted_at, updated_at) VALUES ('api', 'queued', 1, 'text/plain', x'78', {now}, {now});
                INSERT INTO async_requests (api, id, state, content_type, payload, result_json, submitted_at, updated_at) VALUES ('api', 'done', 3, 'text/plain', x'', 'null', {now}, {now});
                PRAGMA user_version = 1;
                """);
        }

        await using (SqliteAsyncResultStore store = Open("v1.db"))
        {
            Assert.Equal("queued", Assert.Single(await store.GetUnfinishedAsync()).Id);
            Assert.Equal(AsyncRequestState.Completed, (await store.GetAsync("done"))!.State);
            Assert.True(await store.TryCompleteAsync("queued", "1", Time.GetUtcNow()));
            Assert.Empty(await store.GetUnfinishedAsync());
        }

        using SqliteConnection migrated = OpenRaw("v1.db", SqliteOpenMode.ReadOnly);
        Assert.Equal(2L, Scalar(migrated, "PRAGMA user_version"));
        Assert.Equal(0L, Scalar(migrated, "SELECT count(*) FROM sqlite_master WHERE name IN ('ix_async_requests_api_state', 'ix_async_requests_api_updated')"));
        Assert.Equal(2L, Scalar(migrated, "SELECT count(*) FROM sqlite_master WHERE name IN ('ix_async_requests_unfinished', 'ix_async_requests_finished')"));
    }

    [Fact]
    public async Task DisposeAsync_ClosesTheFile_ThenCallsThrow()
    {
        string path = Path.Combine(_folder, "closed.db");
        SqliteAsyncResultStore store = Open("closed.db");
        Assert.True(await store.TryAddAsync(NewRequest("a")));
        Assert.True(File.Exists(path + "-wal"));

        await store.DisposeAsync();
        await store.DisposeAsync();

        // The last connection to close checkpoints the WAL and removes it: nothing holds the file.
        Assert.False(File.Exists(path + "-wal"));
        File.Delete(path);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await store.GetAsync("a"));
    }

    [Fact]
    public void Constructor_FolderMissing_ThrowsNamingPath()
    {
        string path = Path.Combine(_folder, "missing", "results.db");

        DirectoryNotFoundException error = Assert.Throws<DirectoryNotFoundException>(
            () => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = path }));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_folder, "missing")));
    }

    [Fact]
    public void Constructor_PathIsFolder_ThrowsNamingPath()
    {
        IOException error = Assert.Throws<IOException>(
            () => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = _folder }));

        Assert.Contains(_folder, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_NotASqliteFile_ThrowsNamingPath()
    {
        string path = Path.Combine(_folder, "garbage.db");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)'x', 4096).ToArray());

        IOException error = Assert.Throws<IOException>(
            () => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = path }));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.IsType<SqliteException>(error.InnerException);
    }

    [Fact]
    public void Constructor_NewerSchemaVersion_ThrowsNamingPath()
    {
        using (SqliteConnection raw = OpenRaw("newer.db", SqliteOpenMode.ReadWriteCreate))
        {
            Scalar(raw, "PRAGMA user_version = 3");
        }

        string path = Path.Combine(_folder, "newer.db");
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(
            () => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = path }));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_NoPath_ThrowsArgumentException() =>
        Assert.Throws<ArgumentException>(() => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions()));

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private SqliteAsyncResultStore Open(string fileName, string apiName = "api") => new(
        new SqliteAsyncResultStoreOptions { DatabasePath = Path.Combine(_folder, fileName), ApiName = apiName },
        new AsyncResultStoreOptions { Retention = Retention, TimeProvider = Time });

    private SqliteConnection OpenRaw(string fileName, SqliteOpenMode mode)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(_folder, fileName),
            Mode = mode,
            Pooling = false,
        }.ToString());
        connection.Open();
        return connection;
    }
}
