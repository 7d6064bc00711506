using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The log messages of Servables.Sqlite (event ids 600–699; 500–599 are Redis's).</summary>
internal static partial class SqliteLog
{
    [LoggerMessage(600, LogLevel.Information, "SQLite result store of async API {ApiName} opened '{Path}' ({Unfinished} unfinished request(s) in it)")]
    public static partial void StoreOpened(ILogger logger, string apiName, string path, long unfinished);

    [LoggerMessage(601, LogLevel.Warning, "SQLite result store of async API {ApiName}: a group of {Count} write(s) could not be committed; each of their callers gets the error, and none of them is in the file")]
    public static partial void GroupFailed(ILogger logger, string apiName, int count, Exception exception);

    [LoggerMessage(602, LogLevel.Warning, "SQLite result store of async API {ApiName} could not set synchronous = FULL again after a group without a flush; the next group that needs a flush sets it first")]
    public static partial void SynchronousNotRestored(ILogger logger, string apiName, Exception exception);
}
