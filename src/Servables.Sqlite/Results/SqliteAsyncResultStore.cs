using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The durable result store: requests and results in a SQLite file, so accepted requests survive a restart of the process.</summary>
/// <remarks>
/// <para>
/// Contract: that of <see cref="IAsyncResultStore"/>. <see cref="TryAddAsync"/> has committed the
/// request, payload included, when it returns, so it survives the process being killed (kill -9)
/// from that moment; power loss is out of scope, though the settings used also cover it on disks
/// that honour flushes (all but the in-progress mark, see <see cref="TryMarkInProgressAsync"/>).
/// Delivery is at-least-once: a request that was in progress when the process
/// died is still in progress in the file, <see cref="GetUnfinishedAsync"/> returns it, and the
/// restarted process runs it again, so handlers must tolerate running twice.
/// </para>
/// <para>
/// Group commit: every change (add, in-progress mark, outcome, expiry sweep) goes into a queue; a caller
/// who finds no commit running commits at once, on its own thread (a lone caller waits for no timer and no
/// other thread), and the changes that arrive meanwhile, from any caller or lane, are committed together in
/// the next transaction, with one flush. Each caller's task completes only after the transaction holding its
/// change committed. A change the file refuses (<c>SQLITE_FULL</c> when <see cref="SqliteAsyncResultStoreOptions.MaxDatabaseBytes"/>
/// is reached, a constraint) fails alone: the transaction is rolled back and the group's other changes are
/// committed without it. When the transaction cannot begin or commit (the disk is full, the file turned read-only or fails at the flush,
/// another connection holds the write lock past <see cref="SqliteAsyncResultStoreOptions.LockTimeout"/>),
/// every change of that group fails with the same <see cref="SqliteException"/> and none of them is in the
/// file (an async API reports that to each submitter as <see cref="AsyncStoreUnavailableException"/>).
/// Reads use a second connection, which sees committed changes only, so they never wait for a flush.
/// </para>
/// <para>
/// A finished request keeps its result or error, but not its payload, for the retention period
/// counted from its <see cref="AsyncRequestRecord.UpdatedAt"/>; after that it reads as absent and
/// its id can be used again. Expired rows stay in the file until <see cref="RemoveExpiredAsync"/>
/// deletes them, so call it periodically. <see cref="AsyncResultStoreOptions.MaxEntries"/> does not
/// apply: the disk bounds the store.
/// </para>
/// <para>
/// Several stores, in one process or in several, may share one file under different
/// <see cref="SqliteAsyncResultStoreOptions.ApiName"/> values; each sees only its own rows.
/// </para>
/// <para>Thread-safe: one group commits at a time on the store's write connection, and one read at a time runs on its read connection.</para>
/// </remarks>
public sealed class SqliteAsyncResultStore : IAsyncResultStore
{
    // Bump when the schema changes, and migrate from the older versions in Open.
    // 2: the two secondary indexes are partial (unfinished rows in submit order; finished rows by update time), so an
    //    add touches one of them and a finish moves a row from one to the other; version 1's are dropped on open.
    private const int SchemaVersion = 2;

    // Stable codes on disk, independent of the order of AsyncRequestState's members; the SQL
    // below spells them as literals.
    private const long InQueue = 1;
    private const long InProgress = 2;
    private const long Completed = 3;
    private const long Failed = 4;

    // seq is an explicit INTEGER PRIMARY KEY (the rowid) so that insertion order survives VACUUM,
    // which may renumber implicit rowids. Every query filters on api first, hence the indexes.
    // The user_version it sets is SchemaVersion.
    private const string CreateSchemaSql = """
        CREATE TABLE IF NOT EXISTS async_requests (
            seq          INTEGER PRIMARY KEY,
            api          TEXT    NOT NULL,
            id           TEXT    NOT NULL,
            state        INTEGER NOT NULL,
            content_type TEXT    NOT NULL,
            payload      BLOB    NOT NULL,
            result_json  TEXT,
            error        TEXT,
            submitted_at INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL,
            UNIQUE (api, id)
        );
        CREATE INDEX IF NOT EXISTS ix_async_requests_unfinished ON async_requests (api, submitted_at, seq) WHERE state IN (1, 2);
        CREATE INDEX IF NOT EXISTS ix_async_requests_finished ON async_requests (api, updated_at) WHERE state IN (3, 4);
        DROP INDEX IF EXISTS ix_async_requests_api_state;
        DROP INDEX IF EXISTS ix_async_requests_api_updated;
        PRAGMA user_version = 2;
        """;

    // Finished at or before the cutoff (now minus retention): reads as absent.
    private const string Expired = "state IN (3, 4) AND updated_at <= $cutoff";
    private const string NotExpired = "NOT (" + Expired + ")";
    private const string RecordColumns = "id, state, content_type, result_json, error, submitted_at, updated_at";

    private readonly string _apiName;
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private readonly ILogger? _logger;

    // Writes: one connection, used by the one group commit that runs at a time (_committing), with its
    // statements prepared once. SQLite allows one writer per file anyway.
    private readonly SqliteConnection _writer;
    private readonly SqliteStatement _deleteExpiredId;
    private readonly SqliteStatement _insert;
    private readonly SqliteStatement _markInProgress;
    private readonly SqliteStatement _complete;
    private readonly SqliteStatement _fail;
    private readonly SqliteCommand _removeExpired;
    private readonly Lock _writeLock = new();
    private List<SqliteWrite> _pending = [];
    private bool _committing;
    private TaskCompletionSource? _idle;

    // Reads: a second connection, which sees only committed rows, one read at a time. A semaphore rather
    // than a lock so that readers queue without blocking a thread.
    private readonly SqliteConnection _reader;
    private readonly SemaphoreSlim _readGate = new(1, 1);

    // The write connection's PRAGMA synchronous: FULL (Open sets it) but during a group that needs no flush.
    private bool _synchronousFull = true;
    private long _groups;
    private long _groupedWrites;
    private long _executeTicks;
    private long _commitTicks;
    private long _flushedGroups;
    private volatile bool _disposed;

    /// <summary>Opens the store on <see cref="SqliteAsyncResultStoreOptions.DatabasePath"/>, creating the file and its schema when missing.</summary>
    /// <param name="sqliteOptions">The database file and the API name.</param>
    /// <param name="options">Retention and clock; null for the defaults. <see cref="AsyncResultStoreOptions.MaxEntries"/> and <see cref="AsyncResultStoreOptions.ApiName"/> are ignored (<see cref="SqliteAsyncResultStoreOptions.ApiName"/> names the API).</param>
    /// <param name="logger">Where the store logs (event ids 600–699); null for nowhere.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder of the database file does not exist.</exception>
    /// <exception cref="IOException">The file cannot be opened or written (a folder that is not writable, a file that is not a SQLite database), or is a folder.</exception>
    /// <exception cref="InvalidOperationException">The file's schema is newer than this version understands.</exception>
    public SqliteAsyncResultStore(SqliteAsyncResultStoreOptions sqliteOptions, AsyncResultStoreOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(sqliteOptions);
        options ??= new AsyncResultStoreOptions();
        List<string> errors = [.. sqliteOptions.Validate(), .. options.Validate()];
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid SQLite result store options: " + string.Join(" ", errors), nameof(sqliteOptions));
        }

        _apiName = sqliteOptions.ApiName;
        _retention = options.Retention;
        _time = options.TimeProvider;
        _logger = logger;
        string path = Path.GetFullPath(sqliteOptions.DatabasePath);
        _writer = Open(path, sqliteOptions.MaxDatabaseBytes, sqliteOptions.LockTimeout);
        try
        {
            _reader = OpenReader(path, sqliteOptions.LockTimeout);
            _deleteExpiredId = new SqliteStatement(_writer, "DELETE FROM async_requests WHERE api = $api AND id = $id AND " + Expired, _apiName, "$id", "$cutoff");
            _insert = new SqliteStatement(
                _writer,
                """
                INSERT INTO async_requests (api, id, state, content_type, payload, submitted_at, updated_at)
                VALUES ($api, $id, 1, $contentType, $payload, $submittedAt, $updatedAt)
                ON CONFLICT (api, id) DO NOTHING
                """,
                _apiName,
                "$id",
                "$contentType",
                "$payload",
                "$submittedAt",
                "$updatedAt");
            _markInProgress = new SqliteStatement(_writer, "UPDATE async_requests SET state = 2, updated_at = $at WHERE api = $api AND id = $id AND state = 1", _apiName, "$id", "$at");
            _complete = new SqliteStatement(_writer, "UPDATE async_requests SET state = 3, result_json = $text, payload = x'', updated_at = $at WHERE api = $api AND id = $id AND state IN (1, 2)", _apiName, "$id", "$at", "$text");
            _fail = new SqliteStatement(_writer, "UPDATE async_requests SET state = 4, error = $text, payload = x'', updated_at = $at WHERE api = $api AND id = $id AND state IN (1, 2)", _apiName, "$id", "$at", "$text");
            _removeExpired = Prepare("DELETE FROM async_requests WHERE api = $api AND " + Expired, "$cutoff");
            if (logger is not null && logger.IsEnabled(LogLevel.Information))
            {
                using SqliteCommand count = CreateReadCommand("SELECT COUNT(*) FROM async_requests WHERE api = $api AND state IN (1, 2)");
                SqliteLog.StoreOpened(logger, _apiName, path, (long)count.ExecuteScalar()!);
            }
        }
        catch
        {
            _reader?.Dispose();
            _writer.Dispose();
            throw;
        }
    }

    /// <summary>True: an accepted request is committed to the file before <see cref="TryAddAsync"/> returns.</summary>
    public bool IsDurable => true;

    /// <summary>How many group transactions have committed, for tests and benchmarks.</summary>
    internal long Groups => Interlocked.Read(ref _groups);

    /// <summary>How many of them flushed the disk (they held an add or an outcome), for tests and benchmarks.</summary>
    internal long FlushedGroups => Interlocked.Read(ref _flushedGroups);

    /// <summary>Where committed groups spent their time: writes committed, and <see cref="System.Diagnostics.Stopwatch"/> ticks running their statements and committing (the flush), for benchmarks.</summary>
    internal (long Writes, long ExecuteTicks, long CommitTicks) GroupTimes => (Interlocked.Read(ref _groupedWrites), Interlocked.Read(ref _executeTicks), Interlocked.Read(ref _commitTicks));

    /// <summary>Whether a group is committing now, for tests.</summary>
    internal bool IsCommitting
    {
        get
        {
            lock (_writeLock)
            {
                return _committing;
            }
        }
    }

    /// <summary>How many writes wait for the next group now, for tests.</summary>
    internal int PendingWrites
    {
        get
        {
            lock (_writeLock)
            {
                return _pending.Count;
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Committed and flushed, in a group with whatever other changes arrived while the previous group was
    /// committing, before the task completes. Cancellation is honoured while the add waits for its group;
    /// once a group has taken it, it is committed (or fails) with the group, so a caller never sees a
    /// cancelled add that was nevertheless committed.
    /// </remarks>
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Id);
        ArgumentNullException.ThrowIfNull(request.ContentType);
        return WriteAsync(new SqliteWrite(SqliteWriteKind.Add, request.Id, request), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return ReadAsync(static (store, args) => store.Get(args.requestId, args.includePayload), (requestId, includePayload), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// This one change needs no flush of its own (it survives kill -9 like every commit; the next durable
    /// group flushes it): a group of nothing but in-progress marks commits without one. Losing a mark to an OS
    /// crash only makes the request read <c>in_queue</c> again, and it runs again either way.
    /// </remarks>
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return WriteAsync(new SqliteWrite(SqliteWriteKind.MarkInProgress, requestId, at: at.UtcTicks), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Drops the payload. Committed and flushed with its group before the task completes.</remarks>
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return WriteAsync(new SqliteWrite(SqliteWriteKind.Complete, requestId, text: resultJson, at: at.UtcTicks), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Drops the payload. Committed and flushed with its group before the task completes.</remarks>
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return WriteAsync(new SqliteWrite(SqliteWriteKind.Fail, requestId, text: errorText, at: at.UtcTicks), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Ordered by <see cref="AsyncRequestRecord.SubmittedAt"/>, then by the order in which they were added.</remarks>
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) =>
        ReadAsync<int, IReadOnlyList<AsyncRequestRecord>>(static (store, _) => store.GetUnfinished(), 0, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// Ordered as <see cref="GetUnfinishedAsync"/>; each page is one indexed query that starts after the row of
    /// <paramref name="afterId"/>, so paging costs the same at any depth. An <paramref name="afterId"/> this store has
    /// no row for (it expired and was removed) reads as the end.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxCount"/> is less than 1.</exception>
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        return ReadAsync<(string? afterId, int maxCount), IReadOnlyList<AsyncRequestRecord>>(static (store, args) => store.GetUnfinished(args.afterId, args.maxCount), (afterId, maxCount), cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) =>
        (int)await WriteCoreAsync(new SqliteWrite(SqliteWriteKind.RemoveExpired), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Commits the writes already queued, waits for the read in progress, then closes both connections so the file
    /// can be moved or deleted; later calls throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Task? committing = null;
        lock (_writeLock)
        {
            if (_disposed)
            {
                committing = _idle?.Task;
            }
            else
            {
                _disposed = true;
                if (_committing)
                {
                    _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    committing = _idle.Task;
                }
            }
        }

        if (committing is not null)
        {
            await committing.ConfigureAwait(false);
        }

        await _readGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_reader.State != System.Data.ConnectionState.Closed)
            {
                _reader.Dispose();
                foreach (IDisposable statement in new IDisposable[] { _deleteExpiredId, _insert, _markInProgress, _complete, _fail, _removeExpired })
                {
                    statement.Dispose();
                }

                // The connections are not pooled, so this closes the file; as the last connection,
                // the writer also checkpoints the WAL into the file and removes it.
                _writer.Dispose();
            }
        }
        finally
        {
            // The semaphore stays undisposed (it never allocated a wait handle), so that late
            // callers get ObjectDisposedException naming this store rather than the semaphore.
            _readGate.Release();
        }
    }

    private static SqliteConnection Open(string path, long? maxBytes, TimeSpan lockTimeout)
    {
        string? folder = Path.GetDirectoryName(path);
        if (folder is null || !Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException(
                $"Cannot open the SQLite result store '{path}': its folder does not exist. Create the folder, or set DatabasePath to a file in a folder that exists.");
        }

        if (Directory.Exists(path))
        {
            throw new IOException($"Cannot open the SQLite result store '{path}': it is a folder. Set DatabasePath to a file name.");
        }

        // Pooling off: the store holds its connections for life, and closing them must release
        // the file (tests delete it; operators move it). The timeout is how long a statement retries
        // while another connection holds the file's write lock.
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = (int)Math.Ceiling(lockTimeout.TotalSeconds),
        }.ToString();
        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();

            // WAL: a commit appends to the -wal file, and readers do not block the writer.
            // synchronous = FULL: every commit also flushes the WAL to the disk. NORMAL would
            // already survive kill -9 (the written WAL pages sit in the OS cache, which outlives
            // the process); FULL costs one flush per write, small next to running a model, and
            // keeps committed requests across an OS crash too. Power loss is out of scope.
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "PRAGMA journal_mode = WAL";
                string? mode = command.ExecuteScalar() as string;
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new IOException($"Cannot open the SQLite result store '{path}': SQLite refused WAL journal mode (it kept '{mode}'). Put the file on a local file system.");
                }

                command.CommandText = "PRAGMA synchronous = FULL";
                command.ExecuteNonQuery();
            }

            // Under the write lock, so that two stores opening a new file do not both create it.
            using SqliteTransaction transaction = connection.BeginTransaction(deferred: false);
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = "PRAGMA user_version";
                long version = (long)command.ExecuteScalar()!;
                if (version > SchemaVersion)
                {
                    throw new InvalidOperationException(
                        $"The SQLite result store '{path}' has schema version {version}; this version of Servables.Sqlite understands up to {SchemaVersion}. Upgrade, or use another file.");
                }

                command.CommandText = CreateSchemaSql;
                command.ExecuteNonQuery();
            }

            transaction.Commit();
            if (maxBytes is { } limit)
            {
                // Per connection, and this store's connection is its only one.
                using SqliteCommand command = connection.CreateCommand();
                command.CommandText = "PRAGMA page_size";
                long pageSize = (long)command.ExecuteScalar()!;
                command.CommandText = $"PRAGMA max_page_count = {Math.Max(1, limit / pageSize)}";
                command.ExecuteNonQuery();
            }

            return connection;
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new IOException(
                $"Cannot open the SQLite result store '{path}': {ex.Message} Check that the folder is writable and that the file, if it exists, is a SQLite database.",
                ex);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static AsyncRequestState ToState(long code) => code switch
    {
        InQueue => AsyncRequestState.InQueue,
        InProgress => AsyncRequestState.InProgress,
        Completed => AsyncRequestState.Completed,
        Failed => AsyncRequestState.Failed,
        _ => throw new InvalidDataException($"Unknown request state code {code} in the SQLite result store."),
    };

    /// <summary>Reads the columns of <see cref="RecordColumns"/>, then the payload when selected after them.</summary>
    private static AsyncRequestRecord ReadRecord(SqliteDataReader reader, bool withPayload)
    {
        ReadOnlyMemory<byte> payload = ReadOnlyMemory<byte>.Empty;
        if (withPayload && !reader.IsDBNull(7))
        {
            byte[] bytes = reader.GetFieldValue<byte[]>(7);
            if (bytes.Length > 0)
            {
                payload = bytes;
            }
        }

        return new AsyncRequestRecord
        {
            Id = reader.GetString(0),
            State = ToState(reader.GetInt64(1)),
            ContentType = reader.GetString(2),
            ResultJson = reader.IsDBNull(3) ? null : reader.GetString(3),
            Error = reader.IsDBNull(4) ? null : reader.GetString(4),
            SubmittedAt = new DateTimeOffset(reader.GetInt64(5), TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(reader.GetInt64(6), TimeSpan.Zero),
            Payload = payload,
        };
    }

    /// <summary>Opens the read connection, on a file <see cref="Open"/> has set up.</summary>
    private static SqliteConnection OpenReader(string path, TimeSpan lockTimeout)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWrite, // WAL readers write the -shm index
            Pooling = false,
            DefaultTimeout = (int)Math.Ceiling(lockTimeout.TotalSeconds),
        }.ToString());
        try
        {
            connection.Open();
            return connection;
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new IOException($"Cannot open the SQLite result store '{path}' for reading: {ex.Message}", ex);
        }
    }

    /// <summary>Runs <paramref name="operation"/> on the read connection once it is free: at once, without an await, when nothing else holds it.</summary>
    private ValueTask<T> ReadAsync<TArgs, T>(Func<SqliteAsyncResultStore, TArgs, T> operation, TArgs args, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        if (_readGate.Wait(0, CancellationToken.None))
        {
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return new ValueTask<T>(operation(this, args));
            }
            finally
            {
                _readGate.Release();
            }
        }

        return ReadWhenFreeAsync(operation, args, cancellationToken);

        async ValueTask<T> ReadWhenFreeAsync(Func<SqliteAsyncResultStore, TArgs, T> operation, TArgs args, CancellationToken cancellationToken)
        {
            await _readGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return operation(this, args);
            }
            finally
            {
                _readGate.Release();
            }
        }
    }

    private async ValueTask<bool> WriteAsync(SqliteWrite write, CancellationToken cancellationToken)
    {
        ValueTask<long> writing = WriteCoreAsync(write, cancellationToken);
        return writing.IsCompletedSuccessfully ? writing.Result != 0 : await writing.ConfigureAwait(false) != 0;
    }

    /// <summary>Queues <paramref name="write"/> for the next group; commits the group on this thread when no commit runs.</summary>
    /// <remarks>
    /// The caller that finds no commit running leads: it commits the queued writes (its own among them) before
    /// returning, so a lone caller's write completes synchronously. Writes that arrive meanwhile wait; if any do
    /// when the leader's group is done, a thread-pool thread commits them as the next group, and so on until
    /// none wait, so no caller waits for more than the group in progress and its own.
    /// </remarks>
    private ValueTask<long> WriteCoreAsync(SqliteWrite write, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<long>(cancellationToken);
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        write.CancelWith(cancellationToken);
        bool lead;
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _pending.Add(write);
            lead = !_committing;
            _committing = true;
        }

        if (lead)
        {
            CommitGroups(leader: true);
        }

        Task<long> task = write.Task;
        return task.IsCompletedSuccessfully ? new ValueTask<long>(task.Result) : new ValueTask<long>(task);
    }

    /// <summary>Commits groups of queued writes until none wait; a leader commits one group and hands any later ones to the thread pool.</summary>
    private void CommitGroups(bool leader)
    {
        while (true)
        {
            List<SqliteWrite> group;
            lock (_writeLock)
            {
                group = _pending;
                _pending = [];
            }

            CommitGroup(group);
            TaskCompletionSource? idle;
            lock (_writeLock)
            {
                if (_pending.Count > 0)
                {
                    if (!leader)
                    {
                        continue;
                    }

                    // More arrived during the commit: a pool thread commits them, and the leader's caller goes on.
                    ThreadPool.UnsafeQueueUserWorkItem(static store => store.CommitGroups(leader: false), this, preferLocal: false);
                    return;
                }

                _committing = false;
                (idle, _idle) = (_idle, null);
            }

            idle?.TrySetResult();
            return;
        }
    }

    /// <summary>
    /// Commits <paramref name="group"/> in one transaction, flushed when any of its writes needs it, and completes each
    /// write's task after the commit. A write the file refuses fails alone, and the others are committed without it;
    /// when the transaction cannot begin or commit, every write of the group fails with that error. Never throws.
    /// </summary>
    private void CommitGroup(List<SqliteWrite> group)
    {
        List<SqliteWrite> writes = new(group.Count);
        foreach (SqliteWrite write in group)
        {
            if (write.TryTake())
            {
                writes.Add(write);
            }
        }

        var results = new long[writes.Count];
        while (writes.Count > 0)
        {
            bool flush = writes.Exists(static w => w.NeedsFlush);
            SqliteTransaction? transaction = null;
            int refused = -1;
            Exception? refusal = null;
            try
            {
                // FULL flushes the WAL at each commit; a group of nothing but in-progress marks and sweeps needs no flush.
                SetSynchronous(full: flush);
                long began = System.Diagnostics.Stopwatch.GetTimestamp();
                transaction = _writer.BeginTransaction(deferred: false);
                long cutoff = ExpiryCutoff();
                int[] supersededBy = SupersededMarks(writes);
                for (int i = 0; i < writes.Count; i++)
                {
                    if (supersededBy[i] >= 0)
                    {
                        continue;
                    }

                    try
                    {
                        results[i] = Execute(writes[i], transaction, cutoff);
                    }
                    catch (SqliteException ex)
                    {
                        (refused, refusal) = (i, ex);
                        break;
                    }
                }

                for (int i = 0; i < writes.Count && refused < 0; i++)
                {
                    results[i] = supersededBy[i] >= 0 ? results[supersededBy[i]] : results[i];
                }

                if (refused >= 0)
                {
                    RollBack(transaction);
                }
                else
                {
                    long executed = System.Diagnostics.Stopwatch.GetTimestamp();
                    transaction.Commit();
                    long committed = System.Diagnostics.Stopwatch.GetTimestamp();
                    Interlocked.Add(ref _executeTicks, executed - began);
                    Interlocked.Add(ref _commitTicks, committed - executed);
                    Interlocked.Add(ref _groupedWrites, writes.Count);
                    Interlocked.Increment(ref _groups);
                    if (flush)
                    {
                        Interlocked.Increment(ref _flushedGroups);
                    }

                    for (int i = 0; i < writes.Count; i++)
                    {
                        writes[i].Complete(results[i]);
                    }

                    return;
                }
            }
#pragma warning disable CA1031 // Every write of the group gets the error; nothing may escape to the caller that happened to commit.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                RollBack(transaction);
                if (_logger is not null)
                {
                    SqliteLog.GroupFailed(_logger, _apiName, writes.Count, ex);
                }

                foreach (SqliteWrite write in writes)
                {
                    write.Fail(ex);
                }

                return;
            }
            finally
            {
                EndTransaction(transaction);
                if (!flush)
                {
                    RestoreFullSynchronous();
                }
            }

            // One write was refused: it fails alone, and the others run again in a fresh transaction (SQLite may
            // have rolled back more than the one statement).
            writes[refused].Fail(refusal!);
            writes.RemoveAt(refused);
        }
    }

    /// <summary>
    /// For each write, the index of a later write of the same group that makes it moot, else -1: an in-progress mark
    /// followed by its request's completion or failure (which moves the row from queued or in progress to finished,
    /// so the committed row is the same without the mark). A lane does not wait for its mark, so with a quick handler
    /// both usually meet in one group. The skipped mark reports the finish's result.
    /// </summary>
    private static int[] SupersededMarks(List<SqliteWrite> writes)
    {
        var supersededBy = new int[writes.Count];
        Array.Fill(supersededBy, -1);
        Dictionary<string, int>? finishes = null;
        for (int i = writes.Count - 1; i >= 0; i--)
        {
            SqliteWrite write = writes[i];
            if (write.Kind is SqliteWriteKind.Complete or SqliteWriteKind.Fail)
            {
                (finishes ??= new Dictionary<string, int>(StringComparer.Ordinal))[write.Id!] = i;
            }
            else if (write.Kind == SqliteWriteKind.MarkInProgress && finishes is not null && finishes.TryGetValue(write.Id!, out int finish))
            {
                supersededBy[i] = finish;
            }
        }

        return supersededBy;
    }

    private static void EndTransaction(SqliteTransaction? transaction)
    {
        try
        {
            transaction?.Dispose();
        }
        catch (SqliteException)
        {
            // Its rollback failed: SQLite had rolled it back already.
        }
    }

    private static void RollBack(SqliteTransaction? transaction)
    {
        try
        {
            transaction?.Rollback();
        }
        catch (SqliteException)
        {
            // SQLite rolled it back already (a full disk, an I/O error), or it never began.
        }
        catch (InvalidOperationException)
        {
            // Already completed.
        }
    }

    /// <summary>Runs one write's statements in <paramref name="transaction"/>; its result (rows changed, or 1/0 for an add).</summary>
    private long Execute(SqliteWrite write, SqliteTransaction transaction, long cutoff)
    {
        switch (write.Kind)
        {
            case SqliteWriteKind.Add:
                AsyncRequestRecord request = write.Record!;
                _insert.Bind(0, request.Id);
                _insert.Bind(1, request.ContentType);
                _insert.Bind(2, request.Payload.Span);
                _insert.Bind(3, request.SubmittedAt.UtcTicks);
                _insert.Bind(4, request.UpdatedAt.UtcTicks);
                if (_insert.Execute() == 1)
                {
                    return 1;
                }

                // The id exists. An expired row reads as absent, so its id may be used again: delete it, and
                // insert again, so that the new row gets a new seq and queues behind the requests already waiting.
                _deleteExpiredId.Bind(0, request.Id);
                _deleteExpiredId.Bind(1, cutoff);
                return _deleteExpiredId.Execute() == 1 ? _insert.Execute() : 0;
            case SqliteWriteKind.MarkInProgress:
                return Update(_markInProgress, write);
            case SqliteWriteKind.Complete:
                return Update(_complete, write);
            case SqliteWriteKind.Fail:
                return Update(_fail, write);
            default:
                _removeExpired.Transaction = transaction;
                _removeExpired.Parameters[1].Value = cutoff;
                return _removeExpired.ExecuteNonQuery();
        }

        // A conditional state change ($id, $at[, $text]); its WHERE clause names the states it may leave, so state
        // only moves forward.
        static long Update(SqliteStatement statement, SqliteWrite write)
        {
            statement.Bind(0, write.Id!);
            statement.Bind(1, write.At);
            if (write.Text is not null)
            {
                statement.Bind(2, write.Text);
            }

            return statement.Execute();
        }
    }

    /// <summary>A statement on the write connection, prepared once; its parameters are <c>$api</c> (set) and then <paramref name="parameters"/>, in that order.</summary>
    private SqliteCommand Prepare(string sql, params string[] parameters)
    {
        SqliteCommand command = _writer.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$api", _apiName);
        foreach (string name in parameters)
        {
            command.Parameters.Add(new SqliteParameter(name, null) { Value = DBNull.Value });
        }

        if (Array.IndexOf(parameters, "$payload") is int payload and >= 0)
        {
            command.Parameters[payload + 1].SqliteType = SqliteType.Blob;
        }

        return command;
    }

    private SqliteCommand CreateReadCommand(string sql)
    {
        SqliteCommand command = _reader.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$api", _apiName);
        return command;
    }

    /// <summary>Sets <c>PRAGMA synchronous</c> to FULL or NORMAL on the write connection, when it is not so already.</summary>
    private void SetSynchronous(bool full)
    {
        if (_synchronousFull != full)
        {
            using SqliteCommand command = _writer.CreateCommand();
            command.CommandText = full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
            command.ExecuteNonQuery();
            _synchronousFull = full;
        }
    }

    /// <summary>Back to FULL after a group without a flush, so that nothing else ever runs on the connection below FULL; the next durable group tries again if this fails.</summary>
    private void RestoreFullSynchronous()
    {
        try
        {
            SetSynchronous(full: true);
        }
        catch (SqliteException ex) when (_logger is not null)
        {
            SqliteLog.SynchronousNotRestored(_logger, _apiName, ex);
        }
        catch (SqliteException)
        {
            // Logged where there is a logger; the next durable group sets FULL before it begins.
        }
    }

    /// <summary>Finished rows updated at or before this many ticks have expired.</summary>
    private long ExpiryCutoff() => _time.GetUtcNow().UtcTicks - _retention.Ticks;

    private AsyncRequestRecord? Get(string requestId, bool includePayload)
    {
        string columns = includePayload ? RecordColumns + ", payload" : RecordColumns;
        using SqliteCommand command = CreateReadCommand($"SELECT {columns} FROM async_requests WHERE api = $api AND id = $id AND {NotExpired}");
        command.Parameters.AddWithValue("$id", requestId);
        command.Parameters.AddWithValue("$cutoff", ExpiryCutoff());
        using SqliteDataReader reader = command.ExecuteReader();
        return reader.Read() ? ReadRecord(reader, includePayload) : null;
    }

    private List<AsyncRequestRecord> GetUnfinished(string? afterId = null, int maxCount = -1)
    {
        using SqliteCommand command = CreateReadCommand(afterId is null
            ? $"SELECT {RecordColumns}, payload FROM async_requests WHERE api = $api AND state IN (1, 2) ORDER BY submitted_at, seq LIMIT $max"
            : $"""
              SELECT {RecordColumns}, payload FROM async_requests
              WHERE api = $api AND state IN (1, 2)
                AND (submitted_at, seq) > (SELECT submitted_at, seq FROM async_requests WHERE api = $api AND id = $after)
              ORDER BY submitted_at, seq LIMIT $max
              """);
        command.Parameters.AddWithValue("$max", maxCount);
        if (afterId is not null)
        {
            command.Parameters.AddWithValue("$after", afterId);
        }

        using SqliteDataReader reader = command.ExecuteReader();
        var unfinished = new List<AsyncRequestRecord>();
        while (reader.Read())
        {
            unfinished.Add(ReadRecord(reader, withPayload: true));
        }

        return unfinished;
    }
}
