namespace Servables.Async;

/// <summary>Where a submitted request stands; <see cref="AsyncRequestStateNames"/> gives the wire names (<c>in_queue</c>, …).</summary>
public enum AsyncRequestState
{
    /// <summary>No request has this id, or its result expired.</summary>
    NotFound,

    /// <summary>Accepted and waiting for a worker.</summary>
    InQueue,

    /// <summary>A worker is running the handler on it.</summary>
    InProgress,

    /// <summary>The handler returned; the result is stored.</summary>
    Completed,

    /// <summary>The request failed: bad payload, handler error, deadline, cancellation or shutdown; the error text says which.</summary>
    Failed,
}
