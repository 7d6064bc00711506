namespace Servables.Async;

/// <summary>Where a <see cref="SqliteAsyncResultStore"/> keeps its requests: the database file, and which API's rows are its own.</summary>
public sealed class SqliteAsyncResultStoreOptions
{
    /// <summary>The smallest <see cref="MaxDatabaseBytes"/>: 64 KiB.</summary>
    internal const long MinimumMaxDatabaseBytes = 64 * 1024;

    /// <summary>The SQLite database file; created, with its schema, when missing.</summary>
    /// <value>A file path whose folder exists and is writable (the store also writes <c>-wal</c> and <c>-shm</c> files beside it). Required; no default.</value>
    [OptionRequired]
    public string DatabasePath { get; set; } = "";

    /// <summary>The API whose requests this store keeps, so that several APIs can share one file; every query is limited to it.</summary>
    /// <value>1 to 200 characters. Defaults to <c>default</c>.</value>
    public string ApiName { get; set; } = "default";

    /// <summary>The most the database file may grow to, in bytes; null for no limit but the disk's.</summary>
    /// <remarks>
    /// Set as SQLite's <c>max_page_count</c> on the store's connection. When the file is full, a submit
    /// fails with <see cref="AsyncStoreUnavailableException"/> (nothing is accepted that is not stored) and
    /// a result too large to store fails its request with an error saying so; results deleted after
    /// their retention make room again. Several stores sharing one file each apply their own limit.
    /// A file already larger than the limit is not shrunk: it just cannot grow.
    /// </remarks>
    /// <value>64 KiB or more, or null. Defaults to null.</value>
    public long? MaxDatabaseBytes { get; set; }

    /// <summary>How long a group commit waits for the file's write lock while another connection holds it (another store on the same file, another process) before its writes fail.</summary>
    /// <remarks>Writes that fail so throw a <c>SqliteException</c> with <c>SqliteErrorCode</c> 5 (<c>SQLITE_BUSY</c>); an async API refuses such a submit with <see cref="AsyncStoreUnavailableException"/>. Whole seconds (rounded up).</remarks>
    /// <value>1 second to 10 minutes. Defaults to 30 seconds.</value>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A copy of these options for the API named <paramref name="apiName"/>.</summary>
    internal SqliteAsyncResultStoreOptions CopyFor(string apiName) => new() { DatabasePath = DatabasePath, ApiName = apiName, MaxDatabaseBytes = MaxDatabaseBytes, LockTimeout = LockTimeout };

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>
    /// <see cref="DatabasePath"/> and <see cref="LockTimeout"/> are checked by a validator that <c>[OptionsValidator]</c> generates from their
    /// attributes; <see cref="ApiName"/> (a length whose message quotes the name, and null is refused) and
    /// <see cref="MaxDatabaseBytes"/> (a nullable <see cref="long"/>, which the integer range attribute cannot bound)
    /// are checked here.
    /// </remarks>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = SqliteAsyncResultStoreOptionsValidator.Instance.Validate(null, this).Problems();
        if (string.IsNullOrEmpty(ApiName) || ApiName.Length > 200)
        {
            errors.Add($"{nameof(ApiName)} must be 1 to 200 characters; it is '{ApiName}'.");
        }

        if (MaxDatabaseBytes < MinimumMaxDatabaseBytes)
        {
            errors.Add($"{nameof(MaxDatabaseBytes)} must be at least 64 KiB ({MinimumMaxDatabaseBytes}), or null for no limit; it is {MaxDatabaseBytes}.");
        }

        return errors;
    }
}
