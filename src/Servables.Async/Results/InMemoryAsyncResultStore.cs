namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// When full it evicts expired results first, then the oldest finished ones; unfinished requests
/// are never evicted (a store full of them refuses new requests). Thread-safe (one lock; every
/// operation is a dictionary access).
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, AsyncRequestRecord> _records = new(StringComparer.Ordinal);
    private readonly LinkedList<string> _finishedOrder = new();
    private readonly Dictionary<string, LinkedListNode<string>> _finishedNodes = new(StringComparer.Ordinal);
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;

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

        _retention = options.Retention;
        _time = options.TimeProvider;
        _maxEntries = options.MaxEntries;
    }

    /// <inheritdoc />
    public bool IsDurable => false;

    /// <summary>How many requests the store holds now, expired ones not yet evicted included.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _records.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_records.TryGetValue(request.Id, out AsyncRequestRecord? existing))
            {
                if (!IsExpired(existing))
                {
                    return new ValueTask<bool>(false);
                }

                Remove(request.Id);
            }

            if (_records.Count >= _maxEntries)
            {
                MakeRoom();
            }

            _records.Add(request.Id, request with { State = AsyncRequestState.InQueue });
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            if (!_records.TryGetValue(requestId, out AsyncRequestRecord? record) || IsExpired(record))
            {
                return new ValueTask<AsyncRequestRecord?>((AsyncRequestRecord?)null);
            }

            return new ValueTask<AsyncRequestRecord?>(includePayload ? record : record with { Payload = ReadOnlyMemory<byte>.Empty });
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (!_records.TryGetValue(requestId, out AsyncRequestRecord? record) || record.State != AsyncRequestState.InQueue)
            {
                return new ValueTask<bool>(false);
            }

            _records[requestId] = record with { State = AsyncRequestState.InProgress, UpdatedAt = at };
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resultJson);
        return new ValueTask<bool>(Finish(requestId, r => r with { State = AsyncRequestState.Completed, ResultJson = resultJson, UpdatedAt = at, Payload = ReadOnlyMemory<byte>.Empty }));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(errorText);
        return new ValueTask<bool>(Finish(requestId, r => r with { State = AsyncRequestState.Failed, Error = errorText, UpdatedAt = at, Payload = ReadOnlyMemory<byte>.Empty }));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            IReadOnlyList<AsyncRequestRecord> unfinished = _records.Values
                .Where(r => r.State is AsyncRequestState.InQueue or AsyncRequestState.InProgress)
                .OrderBy(r => r.SubmittedAt)
                .ToList();
            return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(unfinished);
        }
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return new ValueTask<int>(RemoveExpired());
        }
    }

    /// <summary>Nothing to release.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private bool Finish(string requestId, Func<AsyncRequestRecord, AsyncRequestRecord> change)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            if (!_records.TryGetValue(requestId, out AsyncRequestRecord? record)
                || record.State is AsyncRequestState.Completed or AsyncRequestState.Failed)
            {
                return false;
            }

            _records[requestId] = change(record);
            _finishedNodes[requestId] = _finishedOrder.AddLast(requestId);
            return true;
        }
    }

    private bool IsExpired(AsyncRequestRecord record) =>
        record.State is AsyncRequestState.Completed or AsyncRequestState.Failed && _time.GetUtcNow() - record.UpdatedAt >= _retention;

    /// <summary>Evicts expired results, then the oldest finished one if still full. Under the lock.</summary>
    private void MakeRoom()
    {
        if (RemoveExpired() > 0)
        {
            return;
        }

        if (_finishedOrder.First is { } oldest)
        {
            Remove(oldest.Value);
            return;
        }

        throw new AsyncStoreFullException($"The in-memory result store holds {_records.Count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
    }

    private int RemoveExpired()
    {
        int removed = 0;
        // Finished order is completion order, so expired entries are at the front.
        while (_finishedOrder.First is { } node && IsExpired(_records[node.Value]))
        {
            Remove(node.Value);
            removed++;
        }

        return removed;
    }

    private void Remove(string requestId)
    {
        _records.Remove(requestId);
        if (_finishedNodes.Remove(requestId, out LinkedListNode<string>? node))
        {
            _finishedOrder.Remove(node);
        }
    }
}
