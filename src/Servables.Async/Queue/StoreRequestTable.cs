using System.Collections.Concurrent;

namespace Servables.Async;

/// <summary>The request table over any <see cref="IAsyncResultStore"/>: the store's records, and a dictionary of live requests by id.</summary>
/// <remarks>A live request is added before the store record and removed after the store's last change to it. Thread-safe.</remarks>
internal sealed class StoreRequestTable(IAsyncResultStore store) : IAsyncRequestTable
{
    private readonly ConcurrentDictionary<string, LiveRequest> _live = new(StringComparer.Ordinal);

    public IAsyncResultStore Store { get; } = store;

    public async ValueTask<bool> TryAddAsync(LiveRequest request, CancellationToken cancellationToken)
    {
        if (!request.HasId)
        {
            request.Id = AsyncRequestIds.New();
        }

        if (!_live.TryAdd(request.Id, request))
        {
            request.MarkDone();
            return false;
        }

        bool added = false;
        try
        {
            added = await Store.TryAddAsync(
                new AsyncRequestRecord { Id = request.Id, State = AsyncRequestState.InQueue, ContentType = request.ContentType, Payload = request.Payload, SubmittedAt = request.SubmittedAt, UpdatedAt = request.SubmittedAt },
                cancellationToken).ConfigureAwait(false);
            return added;
        }
        finally
        {
            if (!added)
            {
                // Never accepted: whoever found the live request meanwhile reads the store.
                Release(request);
            }
        }
    }

    public ValueTask<bool> TryStartAsync(LiveRequest request, DateTimeOffset at) => Store.TryMarkInProgressAsync(request.Id, at);

    public async ValueTask<bool> TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at)
    {
        try
        {
            return error is null
                ? await Store.TryCompleteAsync(request.Id, resultJson!, at).ConfigureAwait(false)
                : await Store.TryFailAsync(request.Id, error, at).ConfigureAwait(false);
        }
        finally
        {
            Release(request);
        }
    }

    public async ValueTask<bool> TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        AsyncRequestRecord? record = await Store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        if (record?.State != AsyncRequestState.InQueue || !await Store.TryFailAsync(requestId, error, at, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        if (_live.TryGetValue(requestId, out LiveRequest? live))
        {
            live.CancelByCaller();
            Release(live);
        }

        return true;
    }

    public async ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> ReadAsync(string requestId, CancellationToken cancellationToken)
    {
        _live.TryGetValue(requestId, out LiveRequest? live);
        AsyncRequestRecord? record = await Store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        AsyncRequestStatus status = record is null
            ? AsyncRequestStatus.NotFound(requestId)
            : new AsyncRequestStatus(record.Id, record.State, record.ResultJson, record.Error, record.UpdatedAt);
        return (status, live);
    }

    public void Release(LiveRequest request)
    {
        _live.TryRemove(new KeyValuePair<string, LiveRequest>(request.Id, request));
        request.MarkDone();
    }

    public IReadOnlyList<LiveRequest> HeldRequests() => [.. _live.Values];

    public async ValueTask<IReadOnlyList<LiveRequest>> RecoverAsync(CancellationToken cancellationToken)
    {
        if (!Store.IsDurable)
        {
            return [];
        }

        var recovered = new List<LiveRequest>();
        foreach (AsyncRequestRecord record in await Store.GetUnfinishedAsync(cancellationToken).ConfigureAwait(false))
        {
            var request = new LiveRequest(record.Id, record.ContentType, record.Payload, record.SubmittedAt, record.State, recovered: true);
            _live[record.Id] = request;
            recovered.Add(request);
        }

        return recovered;
    }
}
