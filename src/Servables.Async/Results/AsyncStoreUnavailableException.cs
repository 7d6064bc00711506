namespace Servables.Async;

/// <summary>Thrown when an async API's result store fails (a full disk, a read-only or unreachable database), so a request cannot be stored or read.</summary>
/// <remarks>
/// Thrown by a submit, the request was not accepted and nothing of it was stored: retry later, once the
/// store is fixed. <see cref="Exception.InnerException"/> is the store's own error (for SQLite a
/// <c>SqliteException</c>, whose <c>SqliteErrorCode</c> says why, e.g. 13 for a full database).
/// </remarks>
public sealed class AsyncStoreUnavailableException : Exception
{
    /// <summary>Creates the exception for a request of <paramref name="apiName"/> whose store call failed with <paramref name="innerException"/>.</summary>
    /// <param name="apiName">The API.</param>
    /// <param name="requestId">The request.</param>
    /// <param name="innerException">The store's error.</param>
    public AsyncStoreUnavailableException(string apiName, string requestId, Exception innerException)
        : base(
            $"The result store of async API '{apiName}' failed while storing request {requestId}; the request was not accepted. "
            + $"Retry later, once the store works again (disk space, permissions, connection). The store said: {innerException?.GetType().Name}: {innerException?.Message}",
            innerException)
    {
        ApiName = apiName;
        RequestId = requestId;
    }

    /// <summary>Creates the exception with a message.</summary>
    public AsyncStoreUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public AsyncStoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public AsyncStoreUnavailableException()
        : base("The async API's result store is unavailable.")
    {
    }

    private AsyncStoreUnavailableException(string apiName, string requestId, string message, Exception innerException)
        : base(message, innerException)
    {
        ApiName = apiName;
        RequestId = requestId;
    }

    /// <summary>The API whose store failed.</summary>
    public string ApiName { get; } = string.Empty;

    /// <summary>The request the store call was for.</summary>
    public string RequestId { get; } = string.Empty;

    /// <summary>The store failed to read a request's status.</summary>
    internal static AsyncStoreUnavailableException Reading(string apiName, string requestId, Exception innerException) => new(
        apiName,
        requestId,
        $"The result store of async API '{apiName}' failed while reading request {requestId}; retry later. The store said: {innerException.GetType().Name}: {innerException.Message}",
        innerException);
}
