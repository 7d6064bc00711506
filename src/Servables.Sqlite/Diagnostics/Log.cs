using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The log messages of Servables.Sqlite (event ids 600–699; 500–599 are Redis's).</summary>
internal static partial class SqliteLog
{
    [LoggerMessage(600, LogLevel.Information, "SQLite result store of async API {ApiName} opened '{Path}' ({Unfinished} unfinished request(s) in it)")]
    public static partial void StoreOpened(ILogger logger, string apiName, string path, long unfinished);
}
