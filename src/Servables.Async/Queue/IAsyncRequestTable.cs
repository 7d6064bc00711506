namespace Servables.Async;

/// <summary>Where an async API keeps its requests: the result store, and the <see cref="LiveRequest"/> of each request this process holds unfinished.</summary>
/// <remarks>
/// The store is the record of truth; the live requests let waiting and cancelling work without
/// polling. <see cref="InMemoryAsyncResultStore"/> is its own table (its entries hold the live
/// requests); any other store is wrapped by <see cref="StoreRequestTable"/>. Every method that
/// ends a request in process (<see cref="TryFinishAsync"/>, <see cref="TryFailQueuedAsync"/>,
/// <see cref="Release"/>) also releases its waiters. Implementations are thread-safe.
/// </remarks>
internal interface IAsyncRequestTable
{
    /// <summary>The store behind the table.</summary>
    IAsyncResultStore Store { get; }

    /// <summary>Adds a new request in <see cref="AsyncRequestState.InQueue"/> (durably, for a durable store), first giving it an id when it has none (<see cref="LiveRequest.HasId"/>).</summary>
    /// <returns>False when a request with that id exists and has not expired; the request's waiters are released.</returns>
    /// <exception cref="AsyncStoreFullException">The store is full of unfinished requests.</exception>
    ValueTask<bool> TryAddAsync(LiveRequest request, CancellationToken cancellationToken);

    /// <summary>Moves a queued request to <see cref="AsyncRequestState.InProgress"/>; false when it is not queued any more (cancelled): do not run it.</summary>
    ValueTask<bool> TryStartAsync(LiveRequest request, DateTimeOffset at);

    /// <summary>Completes the request with <paramref name="resultJson"/>, or fails it with <paramref name="error"/> when that is not null; false when it had already finished.</summary>
    ValueTask<bool> TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at);

    /// <summary>Fails a request that is still queued (a caller's cancel) and cancels its token in case a lane took it up meanwhile; false when it is not queued.</summary>
    ValueTask<bool> TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Reads a request's status, and its live request when it is unfinished and held by this process.</summary>
    ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> ReadAsync(string requestId, CancellationToken cancellationToken);

    /// <summary>
    /// The store cannot take the request's outcome: the request ends failed with <paramref name="error"/> in this
    /// process (its status reads so from here on, whatever the store holds), and its waiters are released.
    /// </summary>
    void FailInProcess(LiveRequest request, string error, DateTimeOffset at);

    /// <summary>This process no longer holds the request (abandoned at shutdown, kept by a durable store): its waiters read the store.</summary>
    void Release(LiveRequest request);

    /// <summary>The requests this process holds unfinished now.</summary>
    IReadOnlyList<LiveRequest> HeldRequests();

    /// <summary>
    /// A page of a durable store's unfinished requests after <paramref name="afterId"/> (null for the first page), oldest
    /// first, now held by this process (those it holds already are left out), and the id the next page starts after:
    /// null once the store has no more. Empty and null for a store that is not durable.
    /// </summary>
    ValueTask<(IReadOnlyList<LiveRequest> Requests, string? Next)> RecoverPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken);
}
