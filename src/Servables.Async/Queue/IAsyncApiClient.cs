namespace Servables.Async;

/// <summary>Submits requests to one async API and reads their status and results.</summary>
/// <remarks>
/// Resolve the client of the API registered without a name as <see cref="IAsyncApiClient"/>, a
/// named one as a keyed service (<c>[FromKeyedServices("name")]</c>) or through
/// <see cref="IAsyncApiClientFactory"/>. Thread-safe.
/// </remarks>
public interface IAsyncApiClient
{
    /// <summary>The API's name.</summary>
    string ApiName { get; }

    /// <summary>Accepts a request and returns its id at once; the handler runs later on a worker.</summary>
    /// <param name="body">The payload.</param>
    /// <param name="contentType">Its Content-Type: <c>application/json</c> (or <c>*/*+json</c>) → JSON; <c>text/plain</c> with optional <c>charset</c> → text; anything else → bytes.</param>
    /// <param name="requestId">A caller-chosen id (Cortex's <c>x-request-id</c>): 1 to 128 of <c>A-Z a-z 0-9 - _ . ~</c>; null for a new random one.</param>
    /// <param name="cancellationToken">Cancels the submit (not the request once accepted).</param>
    /// <returns>The request id, unless the caller gave one: 16 bytes in base64url (22 characters): the time in milliseconds and 80 cryptographically random bits, or for the in-memory store 101 random bits and the slot that holds the request, mixed in.</returns>
    /// <exception cref="AsyncQueueFullException">The queue is full (retryable).</exception>
    /// <exception cref="AsyncRequestRejectedException">The request is known bad now, or the id is malformed or in use.</exception>
    /// <exception cref="AsyncStoreUnavailableException">The result store failed to store the request (a full disk, a read-only file); it was not accepted (retryable once the store works).</exception>
    ValueTask<string> SubmitAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId = null, CancellationToken cancellationToken = default);

    /// <summary>Submits <paramref name="value"/> serialised as <c>application/json</c>.</summary>
    ValueTask<string> SubmitJsonAsync<T>(T value, string? requestId = null, CancellationToken cancellationToken = default);

    /// <summary>Submits <paramref name="text"/> as <c>text/plain; charset=utf-8</c>.</summary>
    ValueTask<string> SubmitTextAsync(string text, string? requestId = null, CancellationToken cancellationToken = default);

    /// <summary>Reads a request's status; <see cref="AsyncRequestState.NotFound"/> for an unknown or expired id.</summary>
    /// <remarks>
    /// A request of this process whose outcome the store could not take (after the lane's retries, see
    /// <see cref="AsyncApiOptions.StoreRetries"/>) reads <see cref="AsyncRequestState.Failed"/> with an error saying so,
    /// whatever the store holds.
    /// </remarks>
    /// <exception cref="AsyncStoreUnavailableException">The result store failed to read the request.</exception>
    ValueTask<AsyncRequestStatus> GetStatusAsync(string requestId, CancellationToken cancellationToken = default);

    /// <summary>Waits until the request completes or fails.</summary>
    /// <param name="requestId">The request.</param>
    /// <param name="timeout">How long to wait; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The final status (completed or failed), or not_found for an unknown id; never an unfinished one.</returns>
    /// <exception cref="TimeoutException">
    /// The request did not finish in time; it goes on. This is also how a wait ends for a request this process
    /// let go of unfinished (abandoned at shutdown, kept by a durable store for the next start): the wait goes
    /// on polling the store, and the message says the status it last read.
    /// </exception>
    /// <remarks>
    /// Completes synchronously, allocating nothing but the status, when the request has finished;
    /// call <see cref="ValueTask{TResult}.AsTask"/> to combine waits (<see cref="Task.WhenAll(Task[])"/>).
    /// </remarks>
    ValueTask<AsyncRequestStatus> WaitForCompletionAsync(string requestId, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>Cancels a request: a queued one fails without running; a running one has its token cancelled and fails.</summary>
    /// <returns>True if the request was queued or running; false if it had finished or is unknown.</returns>
    ValueTask<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default);
}
