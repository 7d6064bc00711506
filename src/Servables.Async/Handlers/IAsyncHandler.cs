namespace Servables.Async;

/// <summary>The user's side of an async API: a class that handles one request at a time per call.</summary>
/// <remarks>
/// <para>
/// Lifecycle: the class is constructed once per API, with dependency injection, before the API
/// runs any request; its constructor may take <see cref="AsyncHandlerConfig"/> (the API's
/// <c>config</c>), <see cref="IAsyncHandlerMetrics"/>, <see cref="IServableManager"/>,
/// <c>ILogger&lt;T&gt;</c>, <see cref="IAsyncApiClientFactory"/> (to chain to other APIs) and any
/// registered service. <see cref="InitializeAsync"/> then runs once (heavy start-up work: loading
/// a model); the API starts running requests when it completes.
/// </para>
/// <para>
/// <see cref="HandleAsync"/> is called once per request, concurrently when the API's worker count
/// or per-worker concurrency is above one: implementations must then be thread-safe. A handler
/// that throws fails only that request. If the handler is <see cref="IDisposable"/> or
/// <see cref="IAsyncDisposable"/>, it is disposed when the host stops.
/// </para>
/// </remarks>
public interface IAsyncHandler
{
    /// <summary>Heavy one-time start-up work; requests run only after it completes. The default does nothing.</summary>
    /// <param name="cancellationToken">Cancelled when the host stops during start-up.</param>
    ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Handles one request.</summary>
    /// <param name="payload">The body, decoded by its Content-Type.</param>
    /// <param name="requestId">The request's id, for logs and for chained calls.</param>
    /// <param name="cancellationToken">
    /// Cancelled at the request's deadline, on <see cref="IAsyncApiClient.CancelAsync"/>, or at shutdown.
    /// It belongs to this call only: without a deadline a worker reuses its source for its next
    /// request (registrations are removed when the call returns), so do not keep the token after it.
    /// </param>
    /// <returns>The result: a <c>JsonNode</c>, a dictionary or any object <c>System.Text.Json</c> can serialise (null is stored as JSON null).</returns>
    ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken);
}
