namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// <para>
/// When full it evicts expired results first, then the oldest finished ones; unfinished requests
/// are never evicted (a store full of them refuses new requests).
/// </para>
/// <para>
/// A finished request costs the garbage collector nothing: its id, content type and result (or
/// error) are copied into large shared text chunks, and its entry is a struct in an array of
/// plain values, so a store holding <see cref="AsyncResultStoreOptions.MaxEntries"/> results for
/// days adds no objects for the collector to trace or promote. Only unfinished requests hold
/// references (their id, content type and payload).
/// </para>
/// <para>
/// Requests an async API submits get ids made here (<see cref="SlotRequestId"/>): 128 random bits and
/// the slot that holds the request, so a read goes straight to the slot. Ids given from outside
/// (a caller's own request id, or <see cref="TryAddAsync(AsyncRequestRecord, CancellationToken)"/>)
/// are found through a dictionary.
/// </para>
/// <para>
/// A timer set for the oldest result's expiry removes expired results as they expire, so that a
/// status read needs no clock reading; <see cref="GetAsync"/> also checks the clock itself. Dispose
/// the store to stop the timer.
/// </para>
/// <para>Thread-safe: one spin lock; every operation is one index access or one dictionary lookup under it.</para>
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncRequestTable
{
    private const int InitialCapacity = 256;

    // A spin lock: every critical section is a hash lookup or an index access and never waits, and
    // System.Threading.Lock's owner-thread lookup measured a quarter slower on this path.
    private SpinLock _gate = new(enableThreadOwnerTracking: false);
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly TextArena _texts = new();

    // Finished requests in completion order; an item whose slot was since freed is skipped.
    private readonly Queue<FinishedItem> _finished = new();

    // The slot of each request whose id was not made here; made ids carry their slot.
    private readonly Dictionary<string, int> _named = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _namedBySpan;
    private Slot[] _slots = new Slot[InitialCapacity];

    // What unfinished requests hold by reference, by slot; the only references the store keeps.
    private Held[] _held = new Held[InitialCapacity];
    private int _count;
    private int _used;
    private int _free = -1;

    // Removes results as they expire; _expiryDue is when it is set to fire (UTC ticks; MaxValue: not set). Under the lock.
    private readonly ITimer _expiryTimer;
    private long _expiryDue = long.MaxValue;

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
        _namedBySpan = _named.GetAlternateLookup<ReadOnlySpan<char>>();
        _expiryTimer = CreateExpiryTimer(_time, this);
    }

    /// <inheritdoc />
    public bool IsDurable => false;

    /// <summary>How many requests the store holds now, expired ones not yet evicted included.</summary>
    public int Count
    {
        get
        {
            using (EnterGate())
            {
                return _count;
            }
        }
    }

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
        long now = NowTicks();
        using (EnterGate())
        {
            int slot = FindUnexpired(requestId, now);
            return new ValueTask<AsyncRequestRecord?>(slot < 0 ? null : ToRecord(slot, includePayload));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        using (EnterGate())
        {
            int slot = Find(requestId);
            return new ValueTask<bool>(slot >= 0 && _held[slot].Live is { } live ? _slots[slot].State == AsyncRequestState.InQueue && live.TryStart(at.UtcTicks) : Start(slot, at.UtcTicks));
        }
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
        using (EnterGate())
        {
            var unfinished = new List<(long Submitted, AsyncRequestRecord Record)>();
            for (int slot = 0; slot < _used; slot++)
            {
                if (_slots[slot].InUse && !_slots[slot].IsFinished)
                {
                    unfinished.Add((_slots[slot].SubmittedTicks, ToRecord(slot, includePayload: true)));
                }
            }

            IReadOnlyList<AsyncRequestRecord> oldestFirst = [.. unfinished.OrderBy(u => u.Submitted).Select(u => u.Record)];
            return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(oldestFirst);
        }
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        long now = NowTicks();
        using (EnterGate())
        {
            return new ValueTask<int>(RemoveExpired(now));
        }
    }

    /// <summary>Stops the expiry timer.</summary>
    public ValueTask DisposeAsync()
    {
        _expiryTimer.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryAddAsync(LiveRequest request, CancellationToken cancellationToken)
    {
        // The request was stamped with the clock just now: that reading serves as "now" for expiry.
        long submitted = request.SubmittedAt.UtcTicks;
        bool added;
        if (request.Id is { } id)
        {
            added = TryAdd(id, request.ContentType, request.Payload, submitted, submitted, request, submitted);
        }
        else
        {
            // The random bits are drawn outside the lock and the id spelt after it.
            AsyncRequestIds.NextKey(out ulong low, out ulong high);
            int slot;
            using (EnterGate())
            {
                slot = AddUnder(key: (low, high), id: null, request.ContentType, request.Payload, submitted, submitted, request, submitted);
            }

            request.Id = SlotRequestId.Format(low, high, slot);
            added = true;
        }

        if (!added)
        {
            request.MarkDone();
        }

        return new ValueTask<bool>(added);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryStartAsync(LiveRequest request, DateTimeOffset at) =>
        new(request.TryStart(at.UtcTicks)); // no lock: the start is kept on the live request, which a finish or a cancel withdraws first

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at)
    {
        bool finished;
        long expireAt = 0;
        using (EnterGate())
        {
            int slot = SlotOf(request);
            finished = slot >= 0 && !_slots[slot].IsFinished;
            if (finished)
            {
                Finish(slot, error is null ? AsyncRequestState.Completed : AsyncRequestState.Failed, error ?? resultJson!, at.UtcTicks, out expireAt);
            }
        }

        SetExpiryTimer(expireAt);
        request.MarkDone();
        return new ValueTask<bool>(finished);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        LiveRequest? live;
        long expireAt;
        using (EnterGate())
        {
            int slot = Find(requestId); // a queued request never expires
            if (slot < 0 || _slots[slot].State != AsyncRequestState.InQueue || _held[slot].Live?.TryWithdraw() == false)
            {
                return new ValueTask<bool>(false);
            }

            live = Finish(slot, AsyncRequestState.Failed, error, at.UtcTicks, out expireAt);
        }

        SetExpiryTimer(expireAt);
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
        // No clock reading: the expiry timer removes results as they expire.
        using (EnterGate())
        {
            int slot = Find(requestId);
            if (slot < 0)
            {
                return new ValueTask<(AsyncRequestStatus, LiveRequest?)>((AsyncRequestStatus.NotFound(requestId), null));
            }

            ref Slot entry = ref _slots[slot];
            AsyncRequestState state = StateOf(slot, out long updatedTicks);
            var status = new AsyncRequestStatus(
                requestId,
                state,
                state == AsyncRequestState.Completed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
                state == AsyncRequestState.Failed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
                new DateTimeOffset(updatedTicks, TimeSpan.Zero));
            return new ValueTask<(AsyncRequestStatus, LiveRequest?)>((status, entry.IsFinished ? null : _held[slot].Live));
        }
    }

    /// <inheritdoc />
    void IAsyncRequestTable.Release(LiveRequest request)
    {
        using (EnterGate())
        {
            int slot = SlotOf(request);
            if (slot >= 0 && ReferenceEquals(_held[slot].Live, request))
            {
                _held[slot].Live = null;
            }
        }

        request.MarkDone();
    }

    /// <inheritdoc />
    IReadOnlyList<LiveRequest> IAsyncRequestTable.HeldRequests()
    {
        using (EnterGate())
        {
            var held = new List<LiveRequest>();
            for (int slot = 0; slot < _used; slot++)
            {
                if (_held[slot].Live is { } live)
                {
                    held.Add(live);
                }
            }

            return held;
        }
    }

    /// <inheritdoc />
    ValueTask<IReadOnlyList<LiveRequest>> IAsyncRequestTable.RecoverAsync(CancellationToken cancellationToken) =>
        new ValueTask<IReadOnlyList<LiveRequest>>([]);

    private bool TryAdd(string id, string contentType, ReadOnlyMemory<byte> payload, long submittedTicks, long updatedTicks, LiveRequest? live, long now)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(contentType);
        using (EnterGate())
        {
            int existing = Find(id);
            if (existing >= 0)
            {
                if (!IsExpired(existing, now))
                {
                    return false;
                }

                Remove(existing);
            }

            AddUnder(key: null, id, contentType, payload, submittedTicks, updatedTicks, live, now);
            return true;
        }
    }

    /// <summary>Takes a slot for a new request, making room first if full; its id is <paramref name="id"/>, or made from <paramref name="key"/> and the slot. Under the lock.</summary>
    private int AddUnder((ulong Low, ulong High)? key, string? id, string contentType, ReadOnlyMemory<byte> payload, long submittedTicks, long updatedTicks, LiveRequest? live, long now)
    {
        if (_count >= _maxEntries)
        {
            MakeRoom(now);
        }

        int slot = Allocate();
        ref Slot entry = ref _slots[slot];
        entry.InUse = true;
        entry.State = AsyncRequestState.InQueue;
        entry.SubmittedTicks = submittedTicks;
        entry.UpdatedTicks = updatedTicks;
        entry.Texts = default;
        if (key is { } k)
        {
            (entry.KeyLow, entry.KeyHigh, entry.IsNamed) = (k.Low, k.High, false);
        }
        else
        {
            (entry.KeyLow, entry.KeyHigh, entry.IsNamed) = (0, 0, true);
            _named.Add(id!, slot);
        }

        _held[slot] = new Held { Id = id, ContentType = contentType, Payload = payload, Live = live };
        _count++;
        if (live is not null)
        {
            live.StoreSlot = slot;
            live.StoreGeneration = entry.Generation;
        }

        return slot;
    }

    /// <summary>The slot of a request that has not expired at <paramref name="now"/>; -1 when absent. Under the lock.</summary>
    private int FindUnexpired(string id, long now)
    {
        int slot = Find(id);
        return slot >= 0 && IsExpired(slot, now) ? -1 : slot;
    }

    /// <summary>The slot of a request, expired or not; -1 when absent. Under the lock.</summary>
    private int Find(ReadOnlySpan<char> id)
    {
        if (SlotRequestId.TryParse(id, out ulong low, out ulong high, out int slot) && slot < _used)
        {
            ref Slot entry = ref _slots[slot];
            if (entry.InUse && !entry.IsNamed && entry.KeyLow == low && entry.KeyHigh == high)
            {
                return slot;
            }
        }

        // A caller may name a request with a string shaped like a made id: the dictionary has it then.
        return _named.Count > 0 && _namedBySpan.TryGetValue(id, out int named) ? named : -1;
    }

    /// <summary>The id of the request in <paramref name="slot"/> as a new string. Under the lock.</summary>
    private string IdOf(int slot)
    {
        ref Slot entry = ref _slots[slot];
        if (!entry.IsFinished)
        {
            return _held[slot].Id!;
        }

        return entry.IsNamed ? _texts.GetString(entry.Texts, TextPart.Id) : SlotRequestId.Format(entry.KeyLow, entry.KeyHigh, slot);
    }

    /// <summary>The slot a live request was given, if it still stands for that request. Under the lock.</summary>
    private int SlotOf(LiveRequest request)
    {
        int slot = request.StoreSlot;
        return slot >= 0 && slot < _used && _slots[slot].InUse && _slots[slot].Generation == request.StoreGeneration ? slot : -1;
    }

    /// <summary>A request's state and when it last changed: a live request keeps its start itself. Under the lock.</summary>
    private AsyncRequestState StateOf(int slot, out long updatedTicks)
    {
        ref Slot entry = ref _slots[slot];
        if (entry.State == AsyncRequestState.InQueue && _held[slot].Live is { IsStarted: true } live)
        {
            updatedTicks = live.StartedTicks;
            return AsyncRequestState.InProgress;
        }

        updatedTicks = entry.UpdatedTicks;
        return entry.State;
    }

    private bool Start(int slot, long atTicks)
    {
        if (slot < 0 || _slots[slot].State != AsyncRequestState.InQueue)
        {
            return false;
        }

        _slots[slot].State = AsyncRequestState.InProgress;
        _slots[slot].UpdatedTicks = atTicks;
        return true;
    }

    private bool FinishById(string requestId, AsyncRequestState state, string text, long atTicks)
    {
        LiveRequest? live;
        long expireAt;
        using (EnterGate())
        {
            int slot = Find(requestId);
            if (slot < 0 || _slots[slot].IsFinished)
            {
                return false;
            }

            live = Finish(slot, state, text, atTicks, out expireAt);
        }

        SetExpiryTimer(expireAt);
        live?.MarkDone();
        return true;
    }

    /// <summary>Moves an unfinished request's texts into the arena and drops its references. Under the lock.</summary>
    /// <returns>The live request the slot held, whose waiters the caller releases outside the lock.</returns>
    /// <remarks><paramref name="expireAt"/>: when the expiry timer must now fire (UTC ticks), for the caller to set outside the lock; 0 when it is set early enough.</remarks>
    private LiveRequest? Finish(int slot, AsyncRequestState state, string text, long atTicks, out long expireAt)
    {
        ref Slot entry = ref _slots[slot];
        ref Held held = ref _held[slot];

        // A made id is spelt again from the slot's key when asked for: only named ids take room here.
        entry.Texts = _texts.Add(entry.IsNamed ? held.Id! : string.Empty, held.ContentType!, text);
        entry.State = state;
        entry.UpdatedTicks = atTicks;
        LiveRequest? live = held.Live;
        live?.TryWithdraw();
        held = default;
        _finished.Enqueue(new FinishedItem(slot, entry.Generation));
        expireAt = 0;
        if (atTicks + _retentionTicks < _expiryDue)
        {
            expireAt = _expiryDue = atTicks + _retentionTicks;
        }

        return live;
    }

    private int Allocate()
    {
        if (_free >= 0)
        {
            int reused = _free;
            _free = _slots[reused].NextFree;
            return reused;
        }

        if (_used == _slots.Length)
        {
            int size = _slots.Length * 2;
            Array.Resize(ref _slots, size);
            Array.Resize(ref _held, size);
        }

        return _used++;
    }

    /// <summary>Drops a request: its index entry, its texts; puts the slot on the free list. Under the lock.</summary>
    private void Remove(int slot)
    {
        ref Slot entry = ref _slots[slot];
        if (entry.IsNamed)
        {
            if (entry.IsFinished)
            {
                _namedBySpan.Remove(_texts.Get(entry.Texts, TextPart.Id));
            }
            else
            {
                _named.Remove(_held[slot].Id!);
            }
        }

        if (entry.IsFinished)
        {
            _texts.Release(entry.Texts);
        }

        _held[slot] = default;
        entry.InUse = false;
        entry.Generation++;
        entry.NextFree = _free;
        _free = slot;
        _count--;
    }

    private GateScope EnterGate()
    {
        bool taken = false;
        _gate.Enter(ref taken);
        return new GateScope(ref _gate);
    }

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private bool IsExpired(int slot, long now) => _slots[slot].IsFinished && now - _slots[slot].UpdatedTicks >= _retentionTicks;

    private bool IsCurrent(FinishedItem item) => _slots[item.Slot].InUse && _slots[item.Slot].Generation == item.Generation;

    /// <summary>
    /// The expiry timer, unset. It holds the store weakly (a set timer must not keep a store nobody
    /// disposed alive for a week) and runs without its creator's execution context (its callbacks
    /// belong to no caller's scope).
    /// </summary>
    private static ITimer CreateExpiryTimer(TimeProvider time, InMemoryAsyncResultStore store)
    {
        bool restoreFlow = !ExecutionContext.IsFlowSuppressed();
        if (restoreFlow)
        {
            ExecutionContext.SuppressFlow();
        }

        try
        {
            return time.CreateTimer(
                static state =>
                {
                    if (((WeakReference<InMemoryAsyncResultStore>)state!).TryGetTarget(out InMemoryAsyncResultStore? target))
                    {
                        target.OnExpiryDue();
                    }
                },
                new WeakReference<InMemoryAsyncResultStore>(store),
                Timeout.InfiniteTimeSpan,
                Timeout.InfiniteTimeSpan);
        }
        finally
        {
            if (restoreFlow)
            {
                ExecutionContext.RestoreFlow();
            }
        }
    }

    /// <summary>Sets the expiry timer to fire at <paramref name="expireAt"/> (UTC ticks); nothing for 0. Outside the lock.</summary>
    private void SetExpiryTimer(long expireAt)
    {
        if (expireAt != 0)
        {
            ScheduleExpiry(expireAt, NowTicks());
        }
    }

    private void ScheduleExpiry(long expireAt, long now)
    {
        try
        {
            _expiryTimer.Change(TimeSpan.FromTicks(Math.Max(0, expireAt - now)), Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // The store was disposed meanwhile: nothing to remove any more.
        }
    }

    /// <summary>The expiry timer: removes what has expired and sets itself for the oldest result left.</summary>
    private void OnExpiryDue()
    {
        long now = NowTicks();
        long next = long.MaxValue;
        using (EnterGate())
        {
            RemoveExpired(now);
            while (_finished.TryPeek(out FinishedItem oldest))
            {
                if (IsCurrent(oldest))
                {
                    next = _slots[oldest.Slot].UpdatedTicks + _retentionTicks;
                    break;
                }

                _finished.Dequeue();
            }

            _expiryDue = next;
        }

        if (next != long.MaxValue)
        {
            ScheduleExpiry(next, now);
        }
    }

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
                Remove(oldest.Slot);
                return;
            }
        }

        throw new AsyncStoreFullException($"The in-memory result store holds {_count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
    }

    /// <summary>Removes expired results from the front of the completion order (the oldest finish first). Under the lock.</summary>
    private int RemoveExpired(long now)
    {
        int removed = 0;
        while (_finished.TryPeek(out FinishedItem oldest))
        {
            if (IsCurrent(oldest))
            {
                if (!IsExpired(oldest.Slot, now))
                {
                    break;
                }

                Remove(oldest.Slot);
                removed++;
            }

            _finished.Dequeue();
        }

        return removed;
    }

    private AsyncRequestRecord ToRecord(int slot, bool includePayload)
    {
        ref Slot entry = ref _slots[slot];
        bool finished = entry.IsFinished;
        AsyncRequestState state = StateOf(slot, out long updatedTicks);
        return new AsyncRequestRecord
        {
            Id = IdOf(slot),
            State = state,
            ContentType = finished ? _texts.GetString(entry.Texts, TextPart.ContentType) : _held[slot].ContentType!,
            Payload = includePayload && !finished ? _held[slot].Payload : ReadOnlyMemory<byte>.Empty,
            ResultJson = entry.State == AsyncRequestState.Completed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            Error = entry.State == AsyncRequestState.Failed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            SubmittedAt = new DateTimeOffset(entry.SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(updatedTicks, TimeSpan.Zero),
        };
    }

    private readonly record struct FinishedItem(int Slot, int Generation);

    /// <summary>One request's plain values; holds no references, so the collector never scans the array.</summary>
    private struct Slot
    {
        /// <summary>The random bits of an id made here; compared on every read by id.</summary>
        public ulong KeyLow;
        public ulong KeyHigh;
        public long SubmittedTicks;
        public long UpdatedTicks;
        public TextRef Texts;
        public int Generation;

        /// <summary>The next free slot, while this one is free.</summary>
        public int NextFree;
        public AsyncRequestState State;
        public bool InUse;

        /// <summary>The id came from outside (not made here): it is in <see cref="_named"/> and, once finished, in the texts.</summary>
        public bool IsNamed;

        public readonly bool IsFinished => State is AsyncRequestState.Completed or AsyncRequestState.Failed;
    }

    /// <summary>What an unfinished request holds by reference; cleared when it finishes.</summary>
    private struct Held
    {
        public string? Id;
        public string? ContentType;
        public ReadOnlyMemory<byte> Payload;
        public LiveRequest? Live;
    }

    /// <summary>Holds <see cref="_gate"/> until disposed.</summary>
    private readonly ref struct GateScope(ref SpinLock gate)
    {
        private readonly ref SpinLock _gate = ref gate;

        public void Dispose() => _gate.Exit(useMemoryBarrier: false);
    }
}
