namespace Servables.Async;

/// <summary>One request of a batch that an <see cref="IBatchAsyncHandler"/> receives: its decoded payload, its id and its own cancellation.</summary>
/// <remarks>Created by the API for one call of <see cref="IBatchAsyncHandler.HandleBatchAsync"/>; do not keep it after the call returns. Immutable and thread-safe.</remarks>
public sealed class AsyncBatchRequest
{
    internal AsyncBatchRequest(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        Payload = payload;
        RequestId = requestId;
        CancellationToken = cancellationToken;
    }

    /// <summary>The body, decoded by its Content-Type.</summary>
    public AsyncPayload Payload { get; }

    /// <summary>The request's id, for logs and for chained calls.</summary>
    public string RequestId { get; }

    /// <summary>
    /// Cancelled at this request's deadline (<see cref="AsyncApiOptions.RequestTimeout"/>, counted from the
    /// start of its batch), on <see cref="IAsyncApiClient.CancelAsync"/> of this request, or at shutdown.
    /// To honour it, give the request <see cref="AsyncBatchResult.Failure"/> with an
    /// <see cref="OperationCanceledException"/>: the request then fails as a cancelled unbatched one does.
    /// </summary>
    public CancellationToken CancellationToken { get; }
}
