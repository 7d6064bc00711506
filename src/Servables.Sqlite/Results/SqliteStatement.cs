using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Servables.Async;

/// <summary>
/// A statement of the group commit's writes, prepared once on the write connection and run through SQLite's own
/// API. One thread runs every statement of every group, so what a statement costs beyond SQLite's work bounds the
/// store's throughput; binding, stepping and resetting a prepared statement directly costs less than a
/// <see cref="SqliteCommand"/> execution, which builds a reader and binds its parameters through objects each time.
/// It runs in whatever transaction the connection has open; errors are the <see cref="SqliteException"/>s that
/// Microsoft.Data.Sqlite throws. Not thread-safe: the committing thread owns it.
/// </summary>
internal sealed class SqliteStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly int[] _indexes;

    /// <summary>
    /// Prepares <paramref name="sql"/> on <paramref name="connection"/> (open) and binds <c>$api</c>, which stays bound;
    /// the <c>Bind</c> methods then name a parameter by its position in <paramref name="parameters"/>.
    /// </summary>
    public SqliteStatement(SqliteConnection connection, string sql, string apiName, params string[] parameters)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, sql, out _statement), _db);
        _indexes = [.. parameters.Select(IndexOf)];
        SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_text(_statement, IndexOf("$api"), apiName), _db);
    }

    public void Bind(int parameter, string value) => SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_text(_statement, _indexes[parameter], value), _db);

    public void Bind(int parameter, long value) => SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_int64(_statement, _indexes[parameter], value), _db);

    /// <summary>Binds a blob; an empty one is a zero-length blob, not NULL.</summary>
    public void Bind(int parameter, ReadOnlySpan<byte> value) => SqliteException.ThrowExceptionForRC(
        value.IsEmpty ? raw.sqlite3_bind_zeroblob(_statement, _indexes[parameter], 0) : raw.sqlite3_bind_blob(_statement, _indexes[parameter], value),
        _db);

    /// <summary>Runs the statement to its end and resets it (its bindings stay); the rows it changed.</summary>
    /// <exception cref="SqliteException">SQLite refused it (a full file, a constraint, an I/O error).</exception>
    public int Execute()
    {
        int rc = raw.sqlite3_step(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            try
            {
                SqliteException.ThrowExceptionForRC(rc == raw.SQLITE_ROW ? raw.SQLITE_MISUSE : rc, _db);
            }
            finally
            {
                raw.sqlite3_reset(_statement);
            }
        }

        raw.sqlite3_reset(_statement);
        return raw.sqlite3_changes(_db);
    }

    public void Dispose() => _statement.Dispose();

    private int IndexOf(string name)
    {
        int index = raw.sqlite3_bind_parameter_index(_statement, name);
        return index > 0 ? index : throw new ArgumentException($"The statement has no parameter '{name}'.", nameof(name));
    }
}
