namespace Servables.Async;

/// <summary>
/// A result store that is also the API's queue, shared by every host process that serves the API: a submit on
/// any host is taken by whichever host has a free lane, and any host answers for any request.
/// </summary>
/// <remarks>
/// <para>
/// An async API whose store implements this interface (the Servables.Redis package's store does) runs in shared
/// mode: <see cref="IAsyncResultStore.TryAddAsync"/> both stores and enqueues a submit (and enforces
/// <see cref="AsyncApiOptions.QueueCapacity"/> across all hosts, throwing <see cref="AsyncQueueFullException"/>);
/// the API's lanes run what <see cref="TakeAsync"/> hands this host, never what this process submitted unless it
/// takes it; the store's unfinished requests are not recovered at start (the hosts that hold them run them, and
/// the store hands those of a host that stopped to another, see <see cref="TakeAsync"/>).
/// </para>
/// <para>
/// Delivery is at least once: a request is acknowledged only when its outcome is stored
/// (<see cref="IAsyncResultStore.TryCompleteAsync"/> or <see cref="IAsyncResultStore.TryFailAsync"/>), and the
/// first outcome stored is the one kept. Implementations are thread-safe.
/// </para>
/// </remarks>
public interface ISharedAsyncResultStore : IAsyncResultStore
{
    /// <summary>
    /// False for a host that only submits, reads statuses and waits (a front end): the API then never constructs its
    /// handler, runs no lanes, and neither calls <see cref="Attach"/> nor <see cref="TakeAsync"/>.
    /// </summary>
    bool RunsRequests { get; }

    /// <summary>Called once when the API starts, before the first <see cref="TakeAsync"/> (not for a store whose <see cref="RunsRequests"/> is false).</summary>
    /// <param name="cancelHeld">Cancels the running request with this id if this host holds it (a cancel that came from another host); the store calls it from any thread.</param>
    void Attach(Action<string> cancelHeld);

    /// <summary>
    /// Waits until the shared queue has requests for this host, then takes up to <paramref name="maxCount"/> of them:
    /// new ones, or ones a host that stopped was holding. This host holds them until it stores their outcome or
    /// calls <see cref="Release"/>.
    /// </summary>
    /// <returns>At least one request, with its payload; a request a stopped host was running reads <see cref="AsyncRequestState.InProgress"/>.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    ValueTask<IReadOnlyList<AsyncRequestRecord>> TakeAsync(int maxCount, CancellationToken cancellationToken);

    /// <summary>This host no longer holds the request unfinished (it stops, or could not store the outcome): the queue hands it to a host again.</summary>
    void Release(string requestId);

    /// <summary>A caller cancels a request: one still queued fails with <paramref name="errorText"/>; one in progress is cancelled on the host that runs it.</summary>
    /// <returns>What the cancel did.</returns>
    ValueTask<AsyncSharedCancel> CancelAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>How many requests wait in the shared queue, across every host (those a host took do not count): what <see cref="AsyncApiOptions.QueueCapacity"/> bounds in shared mode.</summary>
    /// <remarks>The async API's health check reads it, so that a host reports the queue all hosts share rather than its own few taken requests.</remarks>
    ValueTask<long> CountWaitingAsync(CancellationToken cancellationToken = default);

    /// <summary>A task that completes when the store hears that the request finished, on any host: with its final status when the news carried it, else null (read the status).</summary>
    /// <remarks>Call it before reading the status, so that a finish between the read and the wait is not missed.</remarks>
    Task<AsyncRequestStatus?> WhenFinishedAsync(string requestId, CancellationToken cancellationToken);
}

/// <summary>What <see cref="ISharedAsyncResultStore.CancelAsync"/> did.</summary>
public enum AsyncSharedCancel
{
    /// <summary>Nothing: the request is unknown or finished.</summary>
    None,

    /// <summary>The request was queued; it is failed now and never runs.</summary>
    Withdrawn,

    /// <summary>The request is in progress; the host that runs it was asked to cancel it.</summary>
    Signalled,
}
