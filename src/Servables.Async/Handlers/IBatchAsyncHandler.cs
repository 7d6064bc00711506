namespace Servables.Async;

/// <summary>The user's side of a batched async API: a class that handles many queued requests in one call (a model run over a batch).</summary>
/// <remarks>
/// <para>
/// Lifecycle: as for <see cref="IAsyncHandler"/>. The class is constructed once per API with dependency
/// injection (its constructor may take <see cref="AsyncHandlerConfig"/>, <see cref="IAsyncHandlerMetrics"/>,
/// <see cref="IServableManager"/>, <see cref="IAsyncApiClientFactory"/>, <c>ILogger&lt;T&gt;</c> and any
/// registered service), <see cref="InitializeAsync"/> runs once, and requests run after it completes.
/// Register it with <c>services.AddAsyncHandler&lt;THandler&gt;(…)</c>, as a one-request handler is; the
/// API's <see cref="AsyncApiOptions.Batching"/> says how batches form (the defaults of
/// <see cref="BatchQueueOptions"/> when it is null).
/// </para>
/// <para>
/// What the framework guarantees: the queue feeds requests into a batch queue of the Core
/// <see cref="BatchScheduler{TTask}"/>; each call of <see cref="HandleBatchAsync"/> receives at most
/// <see cref="BatchQueueOptions.MaxBatchSize"/> requests, oldest first, each already marked in progress and
/// with its payload decoded (a request whose payload cannot be decoded fails alone and is left out; a request
/// cancelled before its batch runs never reaches the handler). Every request keeps its own outcome, request
/// timeout, cancellation and stored result, as in the unbatched path.
/// </para>
/// <para>
/// What implementers guarantee: return one <see cref="AsyncBatchResult"/> per request, in the order received
/// (<see cref="AsyncBatchResult.Success"/> with the request's result, or <see cref="AsyncBatchResult.Failure"/>
/// to fail that request alone). Returning fewer or more results fails every request of the batch with an error
/// that says so; a null entry fails its request. A handler that throws fails every request of that batch with
/// its exception, and the API goes on with the next batch.
/// </para>
/// <para>
/// Up to <see cref="AsyncApiOptions.WorkerCount"/> × <see cref="AsyncApiOptions.MaxConcurrencyPerWorker"/>
/// batches run at once: implementations must then be thread-safe. If the handler is <see cref="IDisposable"/>
/// or <see cref="IAsyncDisposable"/>, it is disposed when the host stops.
/// </para>
/// </remarks>
public interface IBatchAsyncHandler
{
    /// <summary>Heavy one-time start-up work; batches run only after it completes. The default does nothing.</summary>
    /// <param name="cancellationToken">Cancelled when the host stops during start-up.</param>
    ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Handles one batch of requests.</summary>
    /// <param name="requests">The batch's requests, oldest first: 1 to <see cref="BatchQueueOptions.MaxBatchSize"/> of them. Each carries its payload, its id and its own cancellation token.</param>
    /// <param name="cancellationToken">
    /// Cancelled once every request of the batch is cancelled (each at its deadline, by its caller, or at
    /// shutdown); a request cancelled alone cancels only its <see cref="AsyncBatchRequest.CancellationToken"/>.
    /// It belongs to this call only.
    /// </param>
    /// <returns>One result per request, in the order of <paramref name="requests"/>.</returns>
    ValueTask<IReadOnlyList<AsyncBatchResult>> HandleBatchAsync(IReadOnlyList<AsyncBatchRequest> requests, CancellationToken cancellationToken);
}
