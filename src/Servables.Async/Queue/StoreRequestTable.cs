using System.Collections.Concurrent;

namespace Servables.Async;

/// <summary>The request table over any <see cref="IAsyncResultStore"/>: the store's records, and a dictionary of live requests by id.</summary>
/// <remarks>A live request is added before the store record and removed after the store's last change to it. Thread-safe.</remarks>
internal sealed class StoreRequestTable(IAsyncResultStore store) : IAsyncRequestTable
{
    // How many requests failed in process (their outcome could not be stored) are remembered, oldest forgotten first.
    private const int MaxFailedInProcess = 10_000;

    private readonly ConcurrentDictionary<string, LiveRequest> _live = new(StringComparer.Ordinal);

    // Requests whose outcome the store could not take: their status, read before the store's.
    private readonly ConcurrentDictionary<string, AsyncRequestStatus> _failedInProcess = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _failedInProcessOrder = new();
    private volatile bool _anyFailedInProcess;

    // The store is also the queue every host shares (shared mode): what this process holds, it took from there.
    private readonly ISharedAsyncResultStore? _shared = store as ISharedAsyncResultStore;

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

    /// <remarks>
    /// <para>The start is first taken on the live request, which a cancel withdraws first (<see cref="TryFailQueuedAsync"/>):
    /// of a start and a cancel racing, exactly one wins, whatever the store does meanwhile.</para>
    /// <para>A retry after the store failed finds the start already taken, and tells the store again.</para>
    /// </remarks>
    public ValueTask<bool> TryStartAsync(LiveRequest request, DateTimeOffset at) =>
        request.TryStart(at.UtcTicks) || request.IsStarted ? Store.TryMarkInProgressAsync(request.Id, at) : new ValueTask<bool>(false);

    /// <remarks>When the store throws, the request stays held, so that the lane can retry (or <see cref="FailInProcess"/> it).</remarks>
    public async ValueTask<bool> TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at)
    {
        bool finished = error is null
            ? await Store.TryCompleteAsync(request.Id, resultJson!, at).ConfigureAwait(false)
            : await Store.TryFailAsync(request.Id, error, at).ConfigureAwait(false);
        if (finished)
        {
            // What the store now holds: the waiters woken by the release read it here instead of from the store.
            request.StoredOutcome = error is null
                ? new AsyncRequestStatus(request.Id, AsyncRequestState.Completed, resultJson, null, at)
                : new AsyncRequestStatus(request.Id, AsyncRequestState.Failed, null, error, at);
        }

        Release(request);
        return finished;
    }

    /// <inheritdoc />
    /// <remarks>The last <c>10,000</c> such requests are remembered; their statuses are read before the store's.</remarks>
    /// <remarks>In shared mode nothing is remembered: the request is released to the shared queue, which hands it to a host again.</remarks>
    public void FailInProcess(LiveRequest request, string error, DateTimeOffset at)
    {
        if (_shared is not null)
        {
            Release(request);
            return;
        }

        _failedInProcess[request.Id] = new AsyncRequestStatus(request.Id, AsyncRequestState.Failed, null, error, at);
        _failedInProcessOrder.Enqueue(request.Id);
        _anyFailedInProcess = true;
        while (_failedInProcessOrder.Count > MaxFailedInProcess && _failedInProcessOrder.TryDequeue(out string? oldest))
        {
            _failedInProcess.TryRemove(oldest, out _);
        }

        Release(request);
    }

    /// <remarks>
    /// A request this process holds is withdrawn from its lane first (false when the lane has started it),
    /// so a started request is never failed as queued. One this process does not hold (another process
    /// sharing the store runs it) is read, then failed: that process may start it in between.
    /// </remarks>
    public async ValueTask<bool> TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        if (_live.TryGetValue(requestId, out LiveRequest? held))
        {
            if (held.IsStarted || !held.TryWithdraw())
            {
                return false;
            }

            bool failed;
            try
            {
                failed = await Store.TryFailAsync(requestId, error, at, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Withdrawn, so no lane runs it: it must not read as queued in this process.
                held.CancelByCaller();
                FailInProcess(held, $"{error} The result store could not record the cancel ({ex.GetType().Name}: {ex.Message}).", at);
                return true;
            }

            if (!failed)
            {
                return false;
            }

            held.CancelByCaller();
            Release(held);
            return true;
        }

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
        if (_anyFailedInProcess && _failedInProcess.TryGetValue(requestId, out AsyncRequestStatus? failed))
        {
            return (failed, null);
        }

        if (_live.TryGetValue(requestId, out LiveRequest? held) && !held.IsDone && !held.Recovered)
        {
            // Held here and unfinished: the live request knows its state, and the store may lag behind it (the lane does not
            // wait for its in-progress mark), so the store is not read (a durable store's reads share one connection).
            // A recovered request's stored state (in progress before the restart) is the store's to tell.
            return held.IsStarted
                ? (new AsyncRequestStatus(requestId, AsyncRequestState.InProgress, null, null, new DateTimeOffset(held.StartedTicks, TimeSpan.Zero)), held)
                : (new AsyncRequestStatus(requestId, AsyncRequestState.InQueue, null, null, held.SubmittedAt), held);
        }

        _live.TryGetValue(requestId, out LiveRequest? live);
        AsyncRequestRecord? record = await Store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        AsyncRequestStatus status = record is null
            ? AsyncRequestStatus.NotFound(requestId)
            : record.State == AsyncRequestState.InQueue && live is { IsStarted: true }
                ? new AsyncRequestStatus(record.Id, AsyncRequestState.InProgress, null, null, new DateTimeOffset(live.StartedTicks, TimeSpan.Zero)) // started, the store not told yet
                : new AsyncRequestStatus(record.Id, record.State, record.ResultJson, record.Error, record.UpdatedAt);
        return (status, live);
    }

    public void Release(LiveRequest request)
    {
        if (_live.TryRemove(new KeyValuePair<string, LiveRequest>(request.Id, request)) && _shared is not null && !request.IsDone)
        {
            _shared.Release(request.Id);
        }

        request.MarkDone();
    }

    /// <summary>Holds a request this host took from the shared queue; null when it holds it already.</summary>
    public LiveRequest? Hold(AsyncRequestRecord record)
    {
        var request = new LiveRequest(record.Id, record.ContentType, record.Payload, record.SubmittedAt, record.State, recovered: true);
        return _live.TryAdd(record.Id, request) ? request : null;
    }

    /// <summary>A caller cancelled a request (here or on another host): if this process holds it, it never starts, or its token is cancelled if it runs.</summary>
    public void CancelHeld(string requestId)
    {
        if (_live.TryGetValue(requestId, out LiveRequest? held))
        {
            held.TryWithdraw();
            held.CancelByCaller();
        }
    }

    public IReadOnlyList<LiveRequest> HeldRequests() => [.. _live.Values];

    public async ValueTask<(IReadOnlyList<LiveRequest> Requests, string? Next)> RecoverPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken)
    {
        if (!Store.IsDurable)
        {
            return ([], null);
        }

        IReadOnlyList<AsyncRequestRecord> page = await Store.GetUnfinishedPageAsync(afterId, maxCount, cancellationToken).ConfigureAwait(false);
        var recovered = new List<LiveRequest>(page.Count);
        foreach (AsyncRequestRecord record in page)
        {
            // A request this process holds already (submitted since the start) is not recovered again.
            var request = new LiveRequest(record.Id, record.ContentType, record.Payload, record.SubmittedAt, record.State, recovered: true);
            if (_live.TryAdd(record.Id, request))
            {
                recovered.Add(request);
            }
        }

        return (recovered, page.Count == 0 ? null : page[^1].Id);
    }
}
