namespace Servables.Async.Tests.Results;

/// <summary>A store that hands every call to another one: an <see cref="IAsyncResultStore"/> and nothing more, as a custom store would be.</summary>
/// <param name="inner">The store that does the work.</param>
/// <param name="onDispose">Told when the store is disposed, before the inner one is.</param>
public sealed class ForwardingResultStore(IAsyncResultStore inner, Action? onDispose = null) : IAsyncResultStore
{
    public bool IsDurable => inner.IsDurable;

    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => inner.GetAsync(requestId, includePayload, cancellationToken);

    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryMarkInProgressAsync(requestId, at, cancellationToken);

    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryFailAsync(requestId, errorText, at, cancellationToken);

    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

    public ValueTask DisposeAsync()
    {
        onDispose?.Invoke();
        return inner.DisposeAsync();
    }
}
