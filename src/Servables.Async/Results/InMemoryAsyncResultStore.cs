using System.Collections.Concurrent;

namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// <para>
/// When full it evicts expired results first, then the oldest finished ones; unfinished requests
/// are never evicted (a store full of them refuses new requests). A store of
/// <see cref="AsyncResultStoreOptions.MaxEntries"/> 16,384 or more is split into 16 shards by
/// request id, each with its own lock, so that submitting, finishing and polling requests rarely
/// wait on each other; one completion order across the shards keeps eviction exact.
/// </para>
/// <para>
/// A finished request costs the garbage collector nothing: its id, content type and result (or
/// error) are copied into large shared text chunks, and its entry is a struct in an array of
/// plain values, so a store holding <see cref="AsyncResultStoreOptions.MaxEntries"/> results for
/// days adds no objects for the collector to trace or promote. Only unfinished requests hold
/// references (their id, content type and payload).
/// </para>
/// <para>Thread-safe: every operation is one hash lookup (or one index access) under its shard's lock; evictions also take one store-wide lock.</para>
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncRequestTable
{
    /// <summary>The smallest <see cref="AsyncResultStoreOptions.MaxEntries"/> that is split into shards.</summary>
    internal const int ShardedFrom = 16_384;

    private const int ShardCount = 16;

    private readonly TimeProvider _time;
    private readonly EntryCount _count;
    private readonly RequestShard[] _shards;

    // Finished requests of every shard in completion order (expired ones are a prefix of it); shards
    // add to it without a lock, and evictions take from its front under _evictGate.
    private readonly ConcurrentQueue<FinishedItem> _completionOrder = new();
    private readonly Lock _evictGate = new();

    /// <summary>Creates an empty store.</summary>
    /// <param name="options">Retention, clock and bound; null for the defaults.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public InMemoryAsyncResultStore(AsyncResultStoreOptions? options = null)
    {
        options ??= new AsyncResultStoreOptions();
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid AsyncResultStoreOptions: " + string.Join(" ", errors), nameof(options));
        }

        _time = options.TimeProvider;
        _count = new EntryCount(options.MaxEntries);
        int shards = options.MaxEntries >= ShardedFrom ? ShardCount : 1;
        _shards = [.. Enumerable.Range(0, shards).Select(i => new RequestShard(i, options.Retention.Ticks, _count, _completionOrder))];
    }

    /// <inheritdoc />
    public bool IsDurable => false;

    /// <summary>How many requests the store holds now, expired ones not yet evicted included.</summary>
    public int Count => _count.Count;

    /// <inheritdoc />
    IAsyncResultStore IAsyncRequestTable.Store => this;

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        return new ValueTask<bool>(TryAdd(request.Id, request.ContentType, request.Payload, request.SubmittedAt.UtcTicks, request.UpdatedAt.UtcTicks, live: null, NowTicks()));
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        int hash = Hash(requestId);
        return new ValueTask<AsyncRequestRecord?>(ShardOf(hash).Get(requestId, hash, includePayload, NowTicks()));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        int hash = Hash(requestId);
        return new ValueTask<bool>(ShardOf(hash).Start(requestId, hash, at.UtcTicks));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return new ValueTask<bool>(FinishById(requestId, AsyncRequestState.Completed, resultJson, at.UtcTicks));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return new ValueTask<bool>(FinishById(requestId, AsyncRequestState.Failed, errorText, at.UtcTicks));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
    {
        var unfinished = new List<(long Submitted, AsyncRequestRecord Record)>();
        foreach (RequestShard shard in _shards)
        {
            shard.CollectUnfinished(unfinished);
        }

        IReadOnlyList<AsyncRequestRecord> oldestFirst = [.. unfinished.OrderBy(u => u.Submitted).Select(u => u.Record)];
        return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(oldestFirst);
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        long now = NowTicks();
        int removed = 0;
        lock (_evictGate)
        {
            while (_completionOrder.TryPeek(out FinishedItem oldest))
            {
                bool? expired = _shards[oldest.Shard].TryRemoveExpired(oldest, now);
                if (expired == false)
                {
                    break;
                }

                removed += expired == true ? 1 : 0;
                _completionOrder.TryDequeue(out _); // the item peeked: only this gate takes items out
            }
        }

        return new ValueTask<int>(removed);
    }

    /// <summary>Nothing to release.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryAddAsync(LiveRequest request, CancellationToken cancellationToken)
    {
        // The request was stamped with the clock just now: that reading serves as "now" for expiry.
        long submitted = request.SubmittedAt.UtcTicks;
        bool added = TryAdd(request.Id, request.ContentType, request.Payload, submitted, submitted, request, submitted);
        if (!added)
        {
            request.MarkDone();
        }

        return new ValueTask<bool>(added);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryStartAsync(LiveRequest request, DateTimeOffset at) =>
        new(request.StoreShard >= 0 && _shards[request.StoreShard].Start(request, at.UtcTicks));

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at)
    {
        bool finished = request.StoreShard >= 0 && _shards[request.StoreShard].Finish(
            request, error is null ? AsyncRequestState.Completed : AsyncRequestState.Failed, error ?? resultJson!, at.UtcTicks);
        request.MarkDone();
        return new ValueTask<bool>(finished);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        int hash = Hash(requestId);
        if (!ShardOf(hash).FailQueued(requestId, hash, error, at.UtcTicks, NowTicks(), out LiveRequest? live))
        {
            return new ValueTask<bool>(false);
        }

        if (live is not null)
        {
            live.CancelByCaller();
            live.MarkDone();
        }

        return new ValueTask<bool>(true);
    }

    /// <inheritdoc />
    ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> IAsyncRequestTable.ReadAsync(string requestId, CancellationToken cancellationToken)
    {
        int hash = Hash(requestId);
        (AsyncRequestStatus? status, LiveRequest? live) = ShardOf(hash).Read(requestId, hash, NowTicks());
        return new ValueTask<(AsyncRequestStatus, LiveRequest?)>((status ?? AsyncRequestStatus.NotFound(requestId), live));
    }

    /// <inheritdoc />
    void IAsyncRequestTable.Release(LiveRequest request)
    {
        if (request.StoreShard >= 0)
        {
            _shards[request.StoreShard].Release(request);
        }

        request.MarkDone();
    }

    /// <inheritdoc />
    IReadOnlyList<LiveRequest> IAsyncRequestTable.HeldRequests()
    {
        var held = new List<LiveRequest>();
        foreach (RequestShard shard in _shards)
        {
            shard.CollectHeld(held);
        }

        return held;
    }

    /// <inheritdoc />
    ValueTask<IReadOnlyList<LiveRequest>> IAsyncRequestTable.RecoverAsync(CancellationToken cancellationToken) =>
        new ValueTask<IReadOnlyList<LiveRequest>>([]);

    private static int Hash(string requestId) => StringComparer.Ordinal.GetHashCode(requestId);

    // The shard takes the hash's top bits; a shard's buckets take its low bits.
    private RequestShard ShardOf(int hash) => _shards[(int)((uint)hash >> 28) & (_shards.Length - 1)];

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private bool TryAdd(string id, string contentType, ReadOnlyMemory<byte> payload, long submittedTicks, long updatedTicks, LiveRequest? live, long now)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(contentType);
        int hash = Hash(id);
        RequestShard home = ShardOf(hash);
        while (true)
        {
            switch (home.TryAdd(id, hash, contentType, payload, submittedTicks, updatedTicks, live, now))
            {
                case RequestShard.AddOutcome.Added:
                    return true;
                case RequestShard.AddOutcome.Exists:
                    return false;
            }

            // Full: evict the oldest finished request (an expired one, if any is), then try again.
            if (!TryEvictOldest())
            {
                throw new AsyncStoreFullException($"The in-memory result store holds {_count.Count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
            }
        }
    }

    /// <summary>Removes the request that finished first of those still kept; false when none is finished.</summary>
    private bool TryEvictOldest()
    {
        lock (_evictGate)
        {
            while (_completionOrder.TryDequeue(out FinishedItem oldest))
            {
                if (_shards[oldest.Shard].TryRemove(oldest))
                {
                    return true;
                }
            }

            return false;
        }
    }

    private bool FinishById(string requestId, AsyncRequestState state, string text, long atTicks)
    {
        int hash = Hash(requestId);
        if (!ShardOf(hash).Finish(requestId, hash, state, text, atTicks, out LiveRequest? live))
        {
            return false;
        }

        live?.MarkDone();
        return true;
    }
}
