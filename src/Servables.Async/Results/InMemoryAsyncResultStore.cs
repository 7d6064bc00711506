namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// <para>
/// It holds up to <see cref="AsyncResultStoreOptions.MaxEntries"/> requests. When full it evicts an
/// expired result first, then the oldest finished one; unfinished requests are never evicted (a
/// store full of them refuses new requests with <see cref="AsyncStoreFullException"/>). A result is
/// readable for <see cref="AsyncResultStoreOptions.Retention"/> from when it finished, checked with
/// the store's <see cref="TimeProvider"/> on every read; expired results are removed by
/// <see cref="RemoveExpiredAsync"/> (the async API's scan, every <see cref="AsyncApiOptions.ExpiryScanInterval"/>),
/// by a read that finds them expired, and by eviction.
/// </para>
/// <para>
/// Each request is one entry: a struct of plain values in one array, in one of two lists linked
/// through the entries (unfinished, in the order added; finished, in the order finished), found
/// through one index by id. An unfinished entry points at its <see cref="LiveRequest"/>, whose phase
/// is its state; a finished entry holds its state, its finish time and where its texts lie. A kept
/// result costs the collector one string (its id, the index's key, which holds no references): its
/// content type and result or error are copied into the shared chunks of a <see cref="TextArena"/>,
/// except a long text, which is kept as the string it came as (copying it would hold the lock).
/// </para>
/// <para>
/// An async API's lanes never take the lock: a lane leaves its outcome on the live request, and the
/// store moves it into the entry (settles it) the next time it reads that entry: a status read,
/// an add that finds no finished request to evict, or the scan. Handing the lock's cache line between
/// a lane's core and a submitter's costs more than the rest of the store's work per request.
/// </para>
/// <para>
/// Thread-safe: one <see cref="Lock"/>, held for a bounded amount of work (a lookup, a list link, a
/// short text copy); whole-store work (the scan, listings) takes it for one batch of entries at a time.
/// </para>
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncRequestTable
{
    private const int Batch = 256;

    // Texts longer than this are kept as they came instead of being copied under the lock.
    private const int MaxCopiedChars = 8 * 1024;

    // An add that needs room passes at most this many requests that have not started, looking for a lane's outcome.
    private const int MaxQueuedPassed = 64;

    private readonly Lock _gate = new();
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly TextArena _texts = new();
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _indexBySpan;
    private readonly Dictionary<int, string> _longTexts = [];
    private Entry[] _entries = new Entry[Batch];
    private LiveRequest?[] _live = new LiveRequest?[Batch];
    private SlotList _unfinished = SlotList.Empty;
    private SlotList _finished = SlotList.Empty;
    private int _count;
    private int _used;
    private int _free = -1;

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
        _indexBySpan = _index.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <inheritdoc />
    public bool IsDurable => false;

    /// <summary>How many requests the store holds now, expired ones not yet removed included.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <inheritdoc />
    IAsyncResultStore IAsyncRequestTable.Store => this;

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Id);
        ArgumentNullException.ThrowIfNull(request.ContentType);
        cancellationToken.ThrowIfCancellationRequested();
        var live = new LiveRequest(request.Id, request.ContentType, request.Payload, request.SubmittedAt, AsyncRequestState.InQueue, recovered: false);
        return new ValueTask<bool>(TryAdd(live, request.UpdatedAt.UtcTicks, held: false, NowTicks()));
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            int slot = FindUnexpired(requestId, out _);
            return new ValueTask<AsyncRequestRecord?>(slot < 0 ? null : ToRecord(slot, includePayload));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        lock (_gate)
        {
            return new ValueTask<bool>(_index.TryGetValue(requestId, out int slot) && _live[slot] is { } live && live.TryStart(at.UtcTicks));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return new ValueTask<bool>(TryEnd(requestId, queuedOnly: false, AsyncRequestState.Completed, resultJson, at.UtcTicks) is not null);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return new ValueTask<bool>(TryEnd(requestId, queuedOnly: false, AsyncRequestState.Failed, errorText, at.UtcTicks) is not null);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
    {
        var unfinished = new List<AsyncRequestRecord>();
        ForEachBatch(slot =>
        {
            if (_entries[slot].State == AsyncRequestState.InQueue && Settle(slot) is null)
            {
                unfinished.Add(ToRecord(slot, includePayload: true));
            }
        });
        unfinished.Sort(static (a, b) => a.SubmittedAt.CompareTo(b.SubmittedAt)); // outside the lock
        return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(unfinished);
    }

    /// <inheritdoc />
    /// <remarks>Settles what the lanes finished, then removes expired results oldest first, one batch under the lock at a time.</remarks>
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        ForEachBatch(slot => Settle(slot));
        long now = NowTicks();
        int removed = 0;
        for (int batch = Batch; batch == Batch;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (_gate)
            {
                for (batch = 0; batch < Batch && _finished.Head >= 0 && IsExpired(_finished.Head, now); batch++)
                {
                    Remove(_finished.Head);
                }
            }

            removed += batch;
        }

        return new ValueTask<int>(removed);
    }

    /// <summary>Nothing to release: the store holds only memory.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryAddAsync(LiveRequest request, CancellationToken cancellationToken)
    {
        if (!request.HasId)
        {
            request.Id = AsyncRequestIds.New();
        }

        // The request was stamped with the clock just now: that reading serves as "now" for expiry.
        long submitted = request.SubmittedAt.UtcTicks;
        bool added = TryAdd(request, submitted, held: true, submitted);
        if (!added)
        {
            request.MarkDone();
        }

        return new ValueTask<bool>(added);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryStartAsync(LiveRequest request, DateTimeOffset at) =>
        new(request.TryStart(at.UtcTicks)); // no lock: the phase is on the live request

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at) =>
        new(request.TrySetOutcome(resultJson, error, at.UtcTicks)); // no lock: settled by the next reader of the entry

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        LiveRequest? ended = TryEnd(requestId, queuedOnly: true, AsyncRequestState.Failed, error, at.UtcTicks);
        ended?.CancelByCaller();
        return new ValueTask<bool>(ended is not null);
    }

    /// <inheritdoc />
    ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> IAsyncRequestTable.ReadAsync(string requestId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            int slot = FindUnexpired(requestId, out string? settledText);
            if (slot < 0)
            {
                return new((AsyncRequestStatus.NotFound(requestId), null));
            }

            AsyncRequestState state = StateOf(slot, out long updatedTicks);
            string? text = state is AsyncRequestState.Completed or AsyncRequestState.Failed ? settledText ?? TextOf(slot) : null; // a read that settled has the lane's own string
            var status = new AsyncRequestStatus(
                requestId,
                state,
                state == AsyncRequestState.Completed ? text : null,
                state == AsyncRequestState.Failed ? text : null,
                new DateTimeOffset(updatedTicks, TimeSpan.Zero));
            return new((status, text is null && _entries[slot].Held ? _live[slot] : null));
        }
    }

    /// <inheritdoc />
    /// <remarks>Never needed here (this table's finishes do not fail); kept for the contract.</remarks>
    void IAsyncRequestTable.FailInProcess(LiveRequest request, string error, DateTimeOffset at) => request.TrySetOutcome(null, error, at.UtcTicks);

    /// <inheritdoc />
    void IAsyncRequestTable.Release(LiveRequest request)
    {
        lock (_gate)
        {
            if (_index.TryGetValue(request.Id, out int slot) && ReferenceEquals(_live[slot], request))
            {
                // The entry stays unfinished and reads as the store holds it, queued: a stand-in keeps its payload, not its start.
                _entries[slot].Held = false;
                _live[slot] = new LiveRequest(request.Id, request.ContentType, request.Payload, request.SubmittedAt, AsyncRequestState.InQueue, recovered: false);
            }
        }

        request.MarkDone();
    }

    /// <inheritdoc />
    IReadOnlyList<LiveRequest> IAsyncRequestTable.HeldRequests()
    {
        var held = new List<LiveRequest>();
        ForEachBatch(slot =>
        {
            if (_entries[slot].Held && _live[slot] is { IsDone: false } live)
            {
                held.Add(live);
            }
        });
        return held;
    }

    /// <inheritdoc />
    ValueTask<IReadOnlyList<LiveRequest>> IAsyncRequestTable.RecoverAsync(CancellationToken cancellationToken) => new([]);

    /// <summary>Adds an unfinished request unless one with its id is kept and not expired; makes room first when full.</summary>
    private bool TryAdd(LiveRequest request, long updatedTicks, bool held, long now)
    {
        lock (_gate)
        {
            if (_index.TryGetValue(request.Id, out int existing))
            {
                Settle(existing);
                if (!IsExpired(existing, now))
                {
                    return false;
                }

                Remove(existing);
            }

            if (_count >= _maxEntries)
            {
                MakeRoom();
            }

            int slot = Allocate();
            _entries[slot] = new Entry
            {
                State = AsyncRequestState.InQueue,
                SubmittedTicks = request.SubmittedAt.UtcTicks,
                UpdatedTicks = updatedTicks,
                Held = held,
            };
            _live[slot] = request;
            _unfinished.Append(_entries, slot);
            _index.Add(request.Id, slot);
            Volatile.Write(ref _count, _count + 1);
            return true;
        }
    }

    /// <summary>The table ends a request itself (a cancel, a finish by id); its waiters are released.</summary>
    /// <returns>The request's live request when this call ended it; null when it was finished (by its lane too), absent, or, with <paramref name="queuedOnly"/>, started.</returns>
    private LiveRequest? TryEnd(string requestId, bool queuedOnly, AsyncRequestState state, string text, long atTicks)
    {
        LiveRequest? live;
        lock (_gate)
        {
            if (!_index.TryGetValue(requestId, out int slot) || (live = _live[slot]) is null)
            {
                return null; // absent, or finished
            }

            if (!(queuedOnly ? live.TryWithdraw() : live.TryClaimOutcome()))
            {
                Settle(slot); // its lane finished it first (or it runs, for a cancel of a queued request)
                return null;
            }

            Finish(slot, state, text, atTicks);
        }

        live.MarkDone();
        return live;
    }

    /// <summary>
    /// The one answer to "what state is this request in": a finished entry's own, else its live
    /// request's phase (an outcome its lane left is settled first). Under the lock.
    /// </summary>
    private AsyncRequestState StateOf(int slot, out long updatedTicks)
    {
        Settle(slot);
        ref Entry entry = ref _entries[slot];
        if (entry.State == AsyncRequestState.InQueue && _live[slot]!.CurrentPhase == LiveRequest.Phase.Running)
        {
            updatedTicks = _live[slot]!.StartedTicks;
            return AsyncRequestState.InProgress;
        }

        updatedTicks = entry.UpdatedTicks;
        return entry.State;
    }

    /// <summary>Moves the outcome the entry's lane left on its live request into the entry, if it left one. Under the lock.</summary>
    /// <returns>The result or error settled, or null when there was none to settle.</returns>
    private string? Settle(int slot)
    {
        if (_live[slot] is not { } live || !live.TryGetOutcome(out string text, out bool failed, out long atTicks))
        {
            return null;
        }

        Finish(slot, failed ? AsyncRequestState.Failed : AsyncRequestState.Completed, text, atTicks);
        return text;
    }

    /// <summary>Ends an unfinished entry: its texts go to the arena (or, when long, stay a string), its references are dropped. Under the lock.</summary>
    private void Finish(int slot, AsyncRequestState state, string text, long atTicks)
    {
        ref Entry entry = ref _entries[slot];
        LiveRequest live = _live[slot]!;
        bool copied = text.Length <= MaxCopiedChars;
        entry.Texts = _texts.Add(live.Id, live.ContentType, copied ? text : string.Empty);
        if (!copied)
        {
            _longTexts[slot] = text;
        }

        (entry.State, entry.UpdatedTicks, entry.Held) = (state, atTicks, false);
        _live[slot] = null;
        _unfinished.Remove(_entries, slot);
        _finished.Append(_entries, slot);
    }

    /// <summary>The slot of a request, settled, that has not expired; -1 when absent. An expired one is removed. Under the lock.</summary>
    private int FindUnexpired(string id, out string? settledText)
    {
        settledText = null;
        if (!_index.TryGetValue(id, out int slot))
        {
            return -1;
        }

        settledText = Settle(slot);
        if (_entries[slot].State != AsyncRequestState.InQueue && IsExpired(slot, NowTicks()))
        {
            Remove(slot);
            return -1;
        }

        return slot;
    }

    /// <summary>Evicts an expired result, else the oldest finished; looks for a lane's outcome to settle when none is finished. Under the lock.</summary>
    /// <remarks>
    /// Lanes take requests in the order they were added, so the unfinished ones before the first that
    /// has not started are few (as many as run); the search stops after passing <see cref="MaxQueuedPassed"/> of those.
    /// </remarks>
    private void MakeRoom()
    {
        int queuedPassed = 0;
        for (int slot = _unfinished.Head; _finished.Head < 0 && slot >= 0 && queuedPassed < MaxQueuedPassed;)
        {
            int next = _entries[slot].Next;
            if (Settle(slot) is null && _live[slot]!.CurrentPhase == LiveRequest.Phase.Queued)
            {
                queuedPassed++;
            }

            slot = next;
        }

        if (_finished.Head < 0)
        {
            throw new AsyncStoreFullException($"The in-memory result store holds {_count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
        }

        // The oldest finished is the first to expire (finishes are settled in about the order they happen).
        Remove(_finished.Head);
    }

    private int Allocate()
    {
        if (_free >= 0)
        {
            int reused = _free;
            _free = _entries[reused].Next;
            return reused;
        }

        if (_used == _entries.Length)
        {
            // Doubling copies the arrays under the lock, as many times as the store doubles up to MaxEntries: amortised O(1) per add.
            Array.Resize(ref _entries, _entries.Length * 2);
            Array.Resize(ref _live, _live.Length * 2);
        }

        return _used++;
    }

    /// <summary>Drops a request: its index key, its texts, its list link; puts the slot on the free list. Under the lock.</summary>
    private void Remove(int slot)
    {
        ref Entry entry = ref _entries[slot];
        if (entry.State == AsyncRequestState.InQueue)
        {
            _index.Remove(_live[slot]!.Id);
            _unfinished.Remove(_entries, slot);
            _live[slot] = null;
        }
        else
        {
            _indexBySpan.Remove(_texts.Get(entry.Texts, TextPart.Id));
            _texts.Release(entry.Texts);
            _longTexts.Remove(slot);
            _finished.Remove(_entries, slot);
        }

        entry = new Entry { State = AsyncRequestState.NotFound, Next = _free };
        _free = slot;
        Volatile.Write(ref _count, _count - 1);
    }

    /// <summary>Runs <paramref name="action"/> on every slot in use, taking the lock for one batch of slots at a time.</summary>
    private void ForEachBatch(Action<int> action)
    {
        for (int start = 0; ; start += Batch)
        {
            lock (_gate)
            {
                if (start >= _used)
                {
                    return;
                }

                for (int slot = start; slot < Math.Min(start + Batch, _used); slot++)
                {
                    if (_entries[slot].State != AsyncRequestState.NotFound)
                    {
                        action(slot);
                    }
                }
            }
        }
    }

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private bool IsExpired(int slot, long now) => _entries[slot].State is AsyncRequestState.Completed or AsyncRequestState.Failed && now - _entries[slot].UpdatedTicks >= _retentionTicks;

    /// <summary>A finished entry's result or error as a new string (a kept long one as it is). Under the lock.</summary>
    private string TextOf(int slot) => _longTexts.TryGetValue(slot, out string? text) ? text : _texts.GetString(_entries[slot].Texts, TextPart.Text);

    private AsyncRequestRecord ToRecord(int slot, bool includePayload)
    {
        AsyncRequestState state = StateOf(slot, out long updatedTicks);
        ref Entry entry = ref _entries[slot];
        LiveRequest? live = _live[slot];
        return new AsyncRequestRecord
        {
            Id = live?.Id ?? _texts.GetString(entry.Texts, TextPart.Id),
            State = state,
            ContentType = live?.ContentType ?? _texts.GetString(entry.Texts, TextPart.ContentType),
            Payload = includePayload && live is not null ? live.Payload : ReadOnlyMemory<byte>.Empty,
            ResultJson = state == AsyncRequestState.Completed ? TextOf(slot) : null,
            Error = state == AsyncRequestState.Failed ? TextOf(slot) : null,
            SubmittedAt = new DateTimeOffset(entry.SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(updatedTicks, TimeSpan.Zero),
        };
    }

    /// <summary>One request's plain values; holds no references, so the collector never scans the array.</summary>
    private struct Entry
    {
        public long SubmittedTicks;

        /// <summary>When it finished (or, unfinished, when it was last updated before it was added).</summary>
        public long UpdatedTicks;
        public TextRef Texts;

        /// <summary>The neighbours in its list; <see cref="Next"/> is the next free slot while free.</summary>
        public int Prev;
        public int Next;

        /// <summary><see cref="AsyncRequestState.InQueue"/> while unfinished (its live request says more), its outcome once finished, <see cref="AsyncRequestState.NotFound"/> while free.</summary>
        public AsyncRequestState State;

        /// <summary>This process holds the request: reads hand out its live request to wait on.</summary>
        public bool Held;
    }

    /// <summary>A doubly linked list of slots, threaded through the entries; O(1) append and remove.</summary>
    private struct SlotList
    {
        public static readonly SlotList Empty = new() { Head = -1, Tail = -1 };

        public int Head;
        public int Tail;

        public void Append(Entry[] entries, int slot)
        {
            (entries[slot].Prev, entries[slot].Next) = (Tail, -1);
            if (Tail >= 0)
            {
                entries[Tail].Next = slot;
            }
            else
            {
                Head = slot;
            }

            Tail = slot;
        }

        public void Remove(Entry[] entries, int slot)
        {
            (int prev, int next) = (entries[slot].Prev, entries[slot].Next);
            if (prev >= 0)
            {
                entries[prev].Next = next;
            }
            else
            {
                Head = next;
            }

            if (next >= 0)
            {
                entries[next].Prev = prev;
            }
            else
            {
                Tail = prev;
            }
        }
    }
}
