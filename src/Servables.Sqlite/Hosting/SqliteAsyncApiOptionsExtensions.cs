using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>Selects the durable SQLite result store for an async API.</summary>
/// <remarks>
/// In the namespace of <see cref="AsyncApiOptions"/>, so that <c>o.UseSqliteStore(path)</c> reads as it did when the
/// store was part of Servables.Async: referencing this package is the only change an app needs.
/// </remarks>
public static class SqliteAsyncApiOptionsExtensions
{
    /// <summary>
    /// Keeps the API's requests in the SQLite file at <paramref name="path"/> (a <see cref="SqliteAsyncResultStore"/>):
    /// a request is on disk before its submit returns, and requests left queued or in progress by a crash run
    /// again at the next start.
    /// </summary>
    /// <remarks>
    /// Sets <see cref="AsyncApiOptions.StoreFactory"/>, replacing any store chosen before (and a later
    /// <see cref="AsyncApiOptions.StoreFactory"/> replaces this one). The store is created when the API is, with the
    /// API's name as its <see cref="SqliteAsyncResultStoreOptions.ApiName"/> (so several APIs may share one file),
    /// the API's retention and clock, and the host's logger factory; the API disposes it.
    /// </remarks>
    /// <param name="options">The API's options.</param>
    /// <param name="path">The database file; it and its schema are created when missing, in a folder that must exist.</param>
    /// <param name="configure">Sets the store's other options, such as <see cref="SqliteAsyncResultStoreOptions.MaxDatabaseBytes"/>; null for the defaults. Its <see cref="SqliteAsyncResultStoreOptions.ApiName"/> is replaced by the API's name.</param>
    /// <returns><paramref name="options"/>, for chaining.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, or the options <paramref name="configure"/> set are invalid (the message names them).</exception>
    public static AsyncApiOptions UseSqliteStore(this AsyncApiOptions options, string path, Action<SqliteAsyncResultStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var template = new SqliteAsyncResultStoreOptions { DatabasePath = path };
        configure?.Invoke(template);
        IReadOnlyList<string> errors = template.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid SQLite result store options: " + string.Join(" ", errors), nameof(configure));
        }

        options.StoreFactory = (services, storeOptions) => new SqliteAsyncResultStore(
            template.CopyFor(storeOptions.ApiName),
            storeOptions,
            services.GetService<ILoggerFactory>()?.CreateLogger<SqliteAsyncResultStore>());
        return options;
    }
}
