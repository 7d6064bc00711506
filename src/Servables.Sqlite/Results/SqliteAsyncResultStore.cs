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
/// <para>Thread-safe: each store has one connection, which one operation at a time uses.</para>
/// </remarks>
public sealed class SqliteAsyncResultStore : IAsyncResultStore
{
    // Bump when the schema changes, and migrate from the older versions in Open.
    private const int SchemaVersion = 1;

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
        CREATE INDEX IF NOT EXISTS ix_async_requests_api_state ON async_requests (api, state, submitted_at);
        CREATE INDEX IF NOT EXISTS ix_async_requests_api_updated ON async_requests (api, updated_at);
        PRAGMA user_version = 1;
        """;

    // Finished at or before the cutoff (now minus retention): reads as absent.
    private const string Expired = "state IN (3, 4) AND updated_at <= $cutoff";
    private const string NotExpired = "NOT (" + Expired + ")";
    private const string RecordColumns = "id, state, content_type, result_json, error, submitted_at, updated_at";

    // One connection per store, guarded by _gate: SQLite calls are synchronous, a connection is not
    // thread-safe, and SQLite allows one writer per file anyway; a pool would let reads overlap,
    // but every call here is short and most are writes. A semaphore rather than a lock so that callers queue without blocking a
    // thread; the one running still blocks its thread for the SQLite call.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SqliteConnection _connection;
    private readonly string _apiName;
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private bool _disposed;

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
        string path = Path.GetFullPath(sqliteOptions.DatabasePath);
        _connection = Open(path, sqliteOptions.MaxDatabaseBytes);
        if (logger is not null && logger.IsEnabled(LogLevel.Information))
        {
            using SqliteCommand count = CreateCommand("SELECT COUNT(*) FROM async_requests WHERE api = $api AND state IN (1, 2)");
            SqliteLog.StoreOpened(logger, _apiName, path, (long)count.ExecuteScalar()!);
        }
    }

    /// <summary>True: an accepted request is committed to the file before <see cref="TryAddAsync"/> returns.</summary>
    public bool IsDurable => true;

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Id);
        ArgumentNullException.ThrowIfNull(request.ContentType);
        return RunAsync(static (store, request) => store.Add(request), request, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return RunAsync(static (store, args) => store.Get(args.requestId, args.includePayload), (requestId, includePayload), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// This one change is committed without its own flush to the disk (it survives kill -9 like every
    /// commit; the next request's commit flushes it): losing it to an OS crash only makes the request
    /// read <c>in_queue</c> again, and it runs again either way. That saves one of the three flushes a
    /// request costs.
    /// </remarks>
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return RunAsync(static (store, args) => store.MarkInProgress(args.requestId, args.at), (requestId, at), cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Drops the payload.</remarks>
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return RunAsync(
            static (store, args) => store.Update(
                "UPDATE async_requests SET state = 3, result_json = $text, payload = x'', updated_at = $at WHERE api = $api AND id = $id AND state IN (1, 2)",
                args.requestId,
                args.at,
                args.resultJson),
            (requestId, resultJson, at),
            cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Drops the payload.</remarks>
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return RunAsync(
            static (store, args) => store.Update(
                "UPDATE async_requests SET state = 4, error = $text, payload = x'', updated_at = $at WHERE api = $api AND id = $id AND state IN (1, 2)",
                args.requestId,
                args.at,
                args.errorText),
            (requestId, errorText, at),
            cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Ordered by <see cref="AsyncRequestRecord.SubmittedAt"/>, then by the order in which they were added.</remarks>
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) =>
        RunAsync<int, IReadOnlyList<AsyncRequestRecord>>(static (store, _) => store.GetUnfinished(), 0, cancellationToken);

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) =>
        RunAsync(static (store, _) => store.RemoveExpired(), 0, cancellationToken);

    /// <summary>Waits for the operation in progress, then closes the connection so the file can be moved or deleted; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_disposed)
            {
                _disposed = true;
                // The connection is not pooled, so this closes the file; as the last connection,
                // it also checkpoints the WAL into the file and removes it.
                _connection.Dispose();
            }
        }
        finally
        {
            // The semaphore stays undisposed (it never allocated a wait handle), so that late
            // callers get ObjectDisposedException naming this store rather than the semaphore.
            _gate.Release();
        }
    }

    private static SqliteConnection Open(string path, long? maxBytes)
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

        // Pooling off: the store holds its one connection for life, and closing it must release
        // the file (tests delete it; operators move it).
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
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

    /// <summary>Runs <paramref name="operation"/> once the connection is free: at once, without an await, when nothing else holds it.</summary>
    private ValueTask<T> RunAsync<TArgs, T>(Func<SqliteAsyncResultStore, TArgs, T> operation, TArgs args, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        if (_gate.Wait(0, CancellationToken.None))
        {
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return new ValueTask<T>(operation(this, args));
            }
            finally
            {
                _gate.Release();
            }
        }

        return RunWhenFreeAsync(operation, args, cancellationToken);

        // Cancellation is honoured while waiting; once a statement runs it finishes, so a caller
        // never sees a cancelled add that was nevertheless committed.
        async ValueTask<T> RunWhenFreeAsync(Func<SqliteAsyncResultStore, TArgs, T> operation, TArgs args, CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return operation(this, args);
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private SqliteCommand CreateCommand(string sql, SqliteTransaction? transaction = null)
    {
        SqliteCommand command = _connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        command.Parameters.AddWithValue("$api", _apiName);
        return command;
    }

    /// <summary>Finished rows updated at or before this many ticks have expired.</summary>
    private long ExpiryCutoff() => _time.GetUtcNow().UtcTicks - _retention.Ticks;

    private bool Add(AsyncRequestRecord request)
    {
        // One transaction, committed (and, with synchronous = FULL, flushed) before returning.
        using SqliteTransaction transaction = _connection.BeginTransaction(deferred: false);

        // An expired row reads as absent, so its id may be used again: delete it first, so that
        // the new row gets a new seq and queues behind the requests already waiting.
        using (SqliteCommand delete = CreateCommand("DELETE FROM async_requests WHERE api = $api AND id = $id AND " + Expired, transaction))
        {
            delete.Parameters.AddWithValue("$id", request.Id);
            delete.Parameters.AddWithValue("$cutoff", ExpiryCutoff());
            delete.ExecuteNonQuery();
        }

        int inserted;
        using (SqliteCommand insert = CreateCommand(
            """
            INSERT INTO async_requests (api, id, state, content_type, payload, submitted_at, updated_at)
            VALUES ($api, $id, 1, $contentType, $payload, $submittedAt, $updatedAt)
            ON CONFLICT (api, id) DO NOTHING
            """,
            transaction))
        {
            insert.Parameters.AddWithValue("$id", request.Id);
            insert.Parameters.AddWithValue("$contentType", request.ContentType);
            insert.Parameters.Add("$payload", SqliteType.Blob).Value = request.Payload.ToArray();
            insert.Parameters.AddWithValue("$submittedAt", request.SubmittedAt.UtcTicks);
            insert.Parameters.AddWithValue("$updatedAt", request.UpdatedAt.UtcTicks);
            inserted = insert.ExecuteNonQuery();
        }

        transaction.Commit();
        return inserted == 1;
    }

    private AsyncRequestRecord? Get(string requestId, bool includePayload)
    {
        string columns = includePayload ? RecordColumns + ", payload" : RecordColumns;
        using SqliteCommand command = CreateCommand($"SELECT {columns} FROM async_requests WHERE api = $api AND id = $id AND {NotExpired}");
        command.Parameters.AddWithValue("$id", requestId);
        command.Parameters.AddWithValue("$cutoff", ExpiryCutoff());
        using SqliteDataReader reader = command.ExecuteReader();
        return reader.Read() ? ReadRecord(reader, includePayload) : null;
    }

    /// <summary>The connection's <c>PRAGMA synchronous</c> level (2 = FULL), for tests.</summary>
    internal ValueTask<long> GetSynchronousLevelAsync() =>
        RunAsync(
            static (store, _) =>
            {
                using SqliteCommand command = store._connection.CreateCommand();
                command.CommandText = "PRAGMA synchronous";
                return (long)command.ExecuteScalar()!;
            },
            0,
            CancellationToken.None);

    private bool MarkInProgress(string requestId, DateTimeOffset at)
    {
        SetSynchronous("NORMAL");
        try
        {
            return Update("UPDATE async_requests SET state = 2, updated_at = $at WHERE api = $api AND id = $id AND state = 1", requestId, at, text: null);
        }
        finally
        {
            SetSynchronous("FULL");
        }
    }

    private void SetSynchronous(string level)
    {
        using SqliteCommand command = _connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous = " + level;
        command.ExecuteNonQuery();
    }

    /// <summary>Runs a conditional state change; its WHERE clause names the states it may leave, so state only moves forward.</summary>
    private bool Update(string sql, string requestId, DateTimeOffset at, string? text)
    {
        using SqliteCommand command = CreateCommand(sql);
        command.Parameters.AddWithValue("$id", requestId);
        command.Parameters.AddWithValue("$at", at.UtcTicks);
        if (text is not null)
        {
            command.Parameters.AddWithValue("$text", text);
        }

        return command.ExecuteNonQuery() == 1;
    }

    private List<AsyncRequestRecord> GetUnfinished()
    {
        using SqliteCommand command = CreateCommand(
            $"SELECT {RecordColumns}, payload FROM async_requests WHERE api = $api AND state IN (1, 2) ORDER BY submitted_at, seq");
        using SqliteDataReader reader = command.ExecuteReader();
        var unfinished = new List<AsyncRequestRecord>();
        while (reader.Read())
        {
            unfinished.Add(ReadRecord(reader, withPayload: true));
        }

        return unfinished;
    }

    private int RemoveExpired()
    {
        using SqliteCommand command = CreateCommand("DELETE FROM async_requests WHERE api = $api AND " + Expired);
        command.Parameters.AddWithValue("$cutoff", ExpiryCutoff());
        return command.ExecuteNonQuery();
    }
}
