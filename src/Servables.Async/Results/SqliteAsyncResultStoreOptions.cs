namespace Servables.Async;

/// <summary>Where a <see cref="SqliteAsyncResultStore"/> keeps its requests: the database file, and which API's rows are its own.</summary>
public sealed class SqliteAsyncResultStoreOptions
{
    /// <summary>The SQLite database file; created, with its schema, when missing.</summary>
    /// <value>A file path whose folder exists and is writable (the store also writes <c>-wal</c> and <c>-shm</c> files beside it). Required; no default.</value>
    public string DatabasePath { get; set; } = "";

    /// <summary>The API whose requests this store keeps, so that several APIs can share one file; every query is limited to it.</summary>
    /// <value>1 to 200 characters. Defaults to <c>default</c>.</value>
    public string ApiName { get; set; } = "default";

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            errors.Add($"{nameof(DatabasePath)} must be set to the SQLite database file.");
        }

        if (string.IsNullOrEmpty(ApiName) || ApiName.Length > 200)
        {
            errors.Add($"{nameof(ApiName)} must be 1 to 200 characters; it is '{ApiName}'.");
        }

        return errors;
    }
}
