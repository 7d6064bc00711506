namespace Servables.Async;

/// <summary>The outcome an <see cref="IBatchAsyncHandler"/> gives one request of its batch: a result, or an error that fails that request alone.</summary>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed class AsyncBatchResult
{
    private AsyncBatchResult(object? value, Exception? error)
    {
        Value = value;
        Error = error;
    }

    /// <summary>Whether the request completes (with <see cref="Value"/>); false when it fails (with <see cref="Error"/>).</summary>
    public bool IsSuccess => Error is null;

    /// <summary>The request's result when it succeeds: serialised as an unbatched handler's result is; null otherwise (or when the result is null).</summary>
    public object? Value { get; }

    /// <summary>Why the request fails; null when it succeeds.</summary>
    public Exception? Error { get; }

    /// <summary>Completes the request with <paramref name="value"/>.</summary>
    /// <param name="value">A <c>JsonNode</c>, a dictionary or any object <c>System.Text.Json</c> can serialise (null is stored as JSON null).</param>
    public static AsyncBatchResult Success(object? value) => new(value, null);

    /// <summary>Fails the request with <paramref name="error"/>; the batch's other requests are not affected.</summary>
    /// <param name="error">
    /// The failure; its type and message become the request's error text. An <see cref="OperationCanceledException"/>
    /// for a request whose <see cref="AsyncBatchRequest.CancellationToken"/> is cancelled fails it as a cancelled request
    /// (by its caller, or past its deadline).
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="error"/> is null.</exception>
    public static AsyncBatchResult Failure(Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new AsyncBatchResult(null, error);
    }
}
