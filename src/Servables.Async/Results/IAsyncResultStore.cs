namespace Servables.Async;

/// <summary>Keeps the requests of one async API: payloads while they wait, then results or errors for the retention period.</summary>
/// <remarks>
/// <para>
/// Contract: <see cref="TryAddAsync"/> has made the request durable (for a durable store) when it
/// returns. A finished request (completed or failed) stays readable for the retention period
/// counted from when it finished, then reads as absent. Unfinished requests never expire.
/// State moves only forward: in_queue → in_progress → completed | failed, or straight from in_queue to completed | failed;
/// a finished request never changes again.
/// </para>
/// <para>Implementations are thread-safe. Every implementation passes the shared contract tests.</para>
/// </remarks>
public interface IAsyncResultStore : IAsyncDisposable
{
    /// <summary>True when accepted requests survive a crash of the process (so they are recovered on restart).</summary>
    bool IsDurable { get; }

    /// <summary>Adds a new request in <see cref="AsyncRequestState.InQueue"/>.</summary>
    /// <returns>False when a request with that id exists (and has not expired).</returns>
    /// <exception cref="AsyncStoreFullException">The store is full of unexpired requests.</exception>
    ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default);

    /// <summary>Reads a request; null when absent or expired. The payload is included only when <paramref name="includePayload"/> is true.</summary>
    ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default);

    /// <summary>Moves a queued request to <see cref="AsyncRequestState.InProgress"/>.</summary>
    /// <returns>False when the request is not in the queue any more (cancelled or unknown): do not run it.</returns>
    ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Stores the result of an unfinished request and marks it completed; false when it had already finished.</summary>
    ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Marks an unfinished request failed with <paramref name="errorText"/>; false when it had already finished.</summary>
    ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Every unfinished request (queued or in progress) with its payload, oldest first: what a restart must run again.</summary>
    ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Up to <paramref name="maxCount"/> unfinished requests with their payloads, oldest first, that come after the request
    /// <paramref name="afterId"/> (the last of the previous page, whatever its state now; null for the first page): what a
    /// restart runs again, a page at a time, so that recovery never holds every payload at once.
    /// </summary>
    /// <remarks>
    /// An async API recovers a durable store through this method, a page at a time as its queue has room. The default
    /// returns every unfinished request (<see cref="GetUnfinishedAsync"/>) as the first page and nothing after it; a
    /// durable store overrides it.
    /// </remarks>
    async ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken = default) =>
        afterId is null ? await GetUnfinishedAsync(cancellationToken).ConfigureAwait(false) : [];

    /// <summary>Deletes finished requests older than the retention period.</summary>
    /// <returns>How many were deleted.</returns>
    ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default);
}
