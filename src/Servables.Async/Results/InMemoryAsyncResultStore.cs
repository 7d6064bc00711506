using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// When full it evicts expired results first, then the oldest finished ones; unfinished requests
/// are never evicted (a store full of them refuses new requests). Entries are structs changed in
/// place, and the completion order is a queue of structs, so a kept result costs the garbage
/// collector its id and result strings only (a store holds up to
/// <see cref="AsyncResultStoreOptions.MaxEntries"/> of them for days). Thread-safe (one lock; every
/// operation is a dictionary access).
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncStatusReader
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    // Finished requests in completion order; an item whose request was since removed (or replaced) is skipped.
    private readonly Queue<FinishedItem> _finished = new();
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private long _finishSequence;

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

        _retentionTicks = options.Retention.Ticks;
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
                return _entries.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        long now = NowTicks();
        lock (_gate)
        {
            ref Entry existing = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, request.Id);
            if (!Unsafe.IsNullRef(ref existing))
            {
                if (!IsExpired(in existing, now))
                {
                    return new ValueTask<bool>(false);
                }

                _entries.Remove(request.Id);
            }

            if (_entries.Count >= _maxEntries)
            {
                MakeRoom(now);
            }

            _entries.Add(request.Id, new Entry
            {
                State = AsyncRequestState.InQueue,
                ContentType = request.ContentType,
                Payload = request.Payload,
                SubmittedTicks = request.SubmittedAt.UtcTicks,
                UpdatedTicks = request.UpdatedAt.UtcTicks,
            });
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        long now = NowTicks();
        lock (_gate)
        {
            ref Entry entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, requestId);
            return Unsafe.IsNullRef(ref entry) || IsExpired(in entry, now)
                ? new ValueTask<AsyncRequestRecord?>((AsyncRequestRecord?)null)
                : new ValueTask<AsyncRequestRecord?>(entry.ToRecord(requestId, includePayload));
        }
    }

    /// <inheritdoc />
    AsyncRequestStatus? IAsyncStatusReader.GetStatus(string requestId)
    {
        long now = NowTicks();
        lock (_gate)
        {
            ref Entry entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, requestId);
            return Unsafe.IsNullRef(ref entry) || IsExpired(in entry, now)
                ? null
                : new AsyncRequestStatus(requestId, entry.State, entry.ResultJson, entry.Error, new DateTimeOffset(entry.UpdatedTicks, TimeSpan.Zero));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            ref Entry entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, requestId);
            if (Unsafe.IsNullRef(ref entry) || entry.State != AsyncRequestState.InQueue)
            {
                return new ValueTask<bool>(false);
            }

            entry.State = AsyncRequestState.InProgress;
            entry.UpdatedTicks = at.UtcTicks;
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resultJson);
        return new ValueTask<bool>(Finish(requestId, AsyncRequestState.Completed, resultJson, at));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(errorText);
        return new ValueTask<bool>(Finish(requestId, AsyncRequestState.Failed, errorText, at));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            IReadOnlyList<AsyncRequestRecord> unfinished = _entries
                .Where(pair => !pair.Value.IsFinished)
                .OrderBy(pair => pair.Value.SubmittedTicks)
                .Select(pair => pair.Value.ToRecord(pair.Key, includePayload: true))
                .ToList();
            return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(unfinished);
        }
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        long now = NowTicks();
        lock (_gate)
        {
            return new ValueTask<int>(RemoveExpired(now));
        }
    }

    /// <summary>Nothing to release.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private bool Finish(string requestId, AsyncRequestState state, string text, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            ref Entry entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, requestId);
            if (Unsafe.IsNullRef(ref entry) || entry.IsFinished)
            {
                return false;
            }

            entry.State = state;
            if (state == AsyncRequestState.Completed)
            {
                entry.ResultJson = text;
            }
            else
            {
                entry.Error = text;
            }

            entry.UpdatedTicks = at.UtcTicks;
            entry.Payload = ReadOnlyMemory<byte>.Empty;
            entry.FinishSequence = ++_finishSequence;
            _finished.Enqueue(new FinishedItem(requestId, entry.FinishSequence));
            return true;
        }
    }

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private bool IsExpired(in Entry entry, long now) => entry.IsFinished && now - entry.UpdatedTicks >= _retentionTicks;

    /// <summary>Evicts expired results, then the oldest finished one if still full. Under the lock.</summary>
    private void MakeRoom(long now)
    {
        if (RemoveExpired(now) > 0)
        {
            return;
        }

        while (_finished.TryDequeue(out FinishedItem oldest))
        {
            if (IsCurrent(oldest))
            {
                _entries.Remove(oldest.Id);
                return;
            }
        }

        throw new AsyncStoreFullException($"The in-memory result store holds {_entries.Count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
    }

    /// <summary>Removes expired results from the front of the completion order (the oldest finish first). Under the lock.</summary>
    private int RemoveExpired(long now)
    {
        int removed = 0;
        while (_finished.TryPeek(out FinishedItem oldest))
        {
            if (!IsCurrent(oldest))
            {
                _finished.Dequeue();
                continue;
            }

            if (!IsExpired(in CollectionsMarshal.GetValueRefOrNullRef(_entries, oldest.Id), now))
            {
                break;
            }

            _finished.Dequeue();
            _entries.Remove(oldest.Id);
            removed++;
        }

        return removed;
    }

    /// <summary>True when the item still stands for its request's entry (not removed, not replaced by a later request with the same id).</summary>
    private bool IsCurrent(FinishedItem item)
    {
        ref Entry entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, item.Id);
        return !Unsafe.IsNullRef(ref entry) && entry.FinishSequence == item.FinishSequence;
    }

    private readonly record struct FinishedItem(string Id, long FinishSequence);

    /// <summary>One request, kept by value in the dictionary and changed in place.</summary>
    private struct Entry
    {
        public AsyncRequestState State;
        public string ContentType;
        public ReadOnlyMemory<byte> Payload;
        public string? ResultJson;
        public string? Error;
        public long SubmittedTicks;
        public long UpdatedTicks;
        public long FinishSequence;

        public readonly bool IsFinished => State is AsyncRequestState.Completed or AsyncRequestState.Failed;

        public readonly AsyncRequestRecord ToRecord(string id, bool includePayload) => new()
        {
            Id = id,
            State = State,
            ContentType = ContentType,
            Payload = includePayload ? Payload : ReadOnlyMemory<byte>.Empty,
            ResultJson = ResultJson,
            Error = Error,
            SubmittedAt = new DateTimeOffset(SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(UpdatedTicks, TimeSpan.Zero),
        };
    }
}
