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
/// days adds no objects for the collector to trace or promote. Only unfinished requests, and
/// finished ones whose outcome has not been moved in yet (see below), hold references: their live
/// request, or the id, content type and payload of a request added as a record.
/// </para>
/// <para>
/// Requests an async API submits get ids made here (<see cref="SlotRequestId"/>): 128 random bits and
/// the slot that holds the request, so a read goes straight to the slot. Ids given from outside
/// (a caller's own request id, or <see cref="TryAddAsync(AsyncRequestRecord, CancellationToken)"/>)
/// are found through a dictionary.
/// </para>
/// <para>
/// An async API's worker lanes never take the store's lock: a lane leaves each outcome on the
/// request's in-process record, and the store moves it into the entry the next time it touches that
/// entry under the lock (a status read, an add that needs room, an expiry scan), keeping the time
/// the request finished, so that the lock and the table's cache lines do not move between a lane's
/// core and a submitter's on every request.
/// </para>
/// <para>
/// A timer set for the oldest result's expiry removes expired results as they expire; a result
/// moved in after later ones may be removed a little late, so a status read also checks it (with a
/// store's <see cref="TimeProvider"/>, read before the lock), and <see cref="GetAsync"/> checks it too. The async API's periodic scan
/// (<see cref="RemoveExpiredAsync"/>) moves in outcomes nobody has read. Dispose the store to stop the timer.
/// </para>
/// <para>
/// Thread-safe: one spin lock. Submits, reads and settles hold it for an index access or a lookup;
/// listings (<see cref="GetUnfinishedAsync"/>, the held requests) take it for 256 slots at a time and
/// sort outside it; a burst of expiries is removed 256 at a time. Settling every outcome the lanes
/// left (the scan, the timer), a table resize and a long result's copy still hold it for work that
/// grows with the store or the text (issue #12 left open).
/// </para>
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncRequestTable
{
    private const int InitialCapacity = 256;
    private const int ListingBatch = 256;

    // A spin lock: the hot sections (add, read, settle) are an index access or a hash lookup and never wait.
    private SpinLock _gate = new(enableThreadOwnerTracking: false);
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly TextArena _texts = new();

    // Finished requests in the order they were settled; an item whose slot was since freed is skipped.
    private readonly Queue<SlotVersion> _finished = new();

    // Requests whose lane may have left an outcome on the live request, oldest first; stale items are skipped.
    private readonly Queue<SlotVersion> _unsettled = new();

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

    // A new, earlier expiry for the timer, set under the lock and applied when the lock is left (0: none).
    private long _rescheduleAt;

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

    /// <summary>Items in the queue of entries whose outcome may wait on a live request; tests check it stays bounded.</summary>
    internal int UnsettledQueueLength
    {
        get
        {
            using (EnterGate())
            {
                return _unsettled.Count;
            }
        }
    }

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
        var unfinished = new List<(long Submitted, AsyncRequestRecord Record)>();
        ForEachSlot(slot =>
        {
            Settle(slot); // an outcome its lane left ends it
            if (_slots[slot].InUse && !_slots[slot].IsFinished)
            {
                unfinished.Add((_slots[slot].SubmittedTicks, ToRecord(slot, includePayload: true)));
            }
        });

        IReadOnlyList<AsyncRequestRecord> oldestFirst = [.. unfinished.OrderBy(u => u.Submitted).Select(u => u.Record)]; // sorted outside the lock
        return new ValueTask<IReadOnlyList<AsyncRequestRecord>>(oldestFirst);
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        long now = NowTicks();
        int removed;
        bool more;
        using (EnterGate())
        {
            SettleAll();
            removed = RemoveExpired(now, ListingBatch, out more); // with the settling, before the timer is moved for what was settled
        }

        return new ValueTask<int>(more ? removed + RemoveExpiredInBatches(now) : removed);
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
    ValueTask<bool> IAsyncRequestTable.TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at) =>
        // No lock: the lane leaves the outcome on the live request, and whoever next takes the lock for
        // the entry (a read, an add, the expiry timer) moves it in, so the lock and the table's cache
        // lines stay with the submitting and reading threads.
        new(request.TrySetOutcome(resultJson, error, at.UtcTicks));

    ValueTask<bool> IAsyncRequestTable.TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken)
    {
        LiveRequest? live;
        using (EnterGate())
        {
            int slot = Find(requestId); // a queued request never expires
            if (slot < 0 || _slots[slot].State != AsyncRequestState.InQueue || _held[slot].Live?.TryWithdraw() == false || !TryClaimOutcome(slot))
            {
                return new ValueTask<bool>(false);
            }

            live = Finish(slot, AsyncRequestState.Failed, error, at.UtcTicks);
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
        long now = NowTicks(); // outside the lock
        using (EnterGate())
        {
            // The expiry timer removes results as they expire; a result settled out of completion order
            // may be removed late, so a read checks.
            int slot = Find(requestId, out string? settledText);
            if (slot >= 0 && IsExpired(slot, now))
            {
                Remove(slot);
                slot = -1;
            }

            if (slot < 0)
            {
                return new ValueTask<(AsyncRequestStatus, LiveRequest?)>((AsyncRequestStatus.NotFound(requestId), null));
            }

            ref Slot entry = ref _slots[slot];
            AsyncRequestState state = StateOf(slot, out long updatedTicks);
            string? text = entry.IsFinished ? settledText ?? _texts.GetString(entry.Texts, TextPart.Text) : null; // the read that moved it in has the lane's string
            var status = new AsyncRequestStatus(
                requestId,
                state,
                state == AsyncRequestState.Completed ? text : null,
                state == AsyncRequestState.Failed ? text : null,
                new DateTimeOffset(updatedTicks, TimeSpan.Zero));
            return new ValueTask<(AsyncRequestStatus, LiveRequest?)>((status, entry.IsFinished ? null : _held[slot].Live));
        }
    }

    /// <inheritdoc />
    /// <remarks>Never needed here (this table's finishes do not fail); kept for the contract.</remarks>
    void IAsyncRequestTable.FailInProcess(LiveRequest request, string error, DateTimeOffset at) => request.TrySetOutcome(null, error, at.UtcTicks);

    /// <inheritdoc />
    void IAsyncRequestTable.Release(LiveRequest request)
    {
        using (EnterGate())
        {
            int slot = SlotOf(request);
            if (slot >= 0 && ReferenceEquals(_held[slot].Live, request))
            {
                _held[slot].Live = null;
                _held[slot].Payload = request.Payload; // the entry stays unfinished and describes itself
            }
        }

        request.MarkDone();
    }

    /// <inheritdoc />
    IReadOnlyList<LiveRequest> IAsyncRequestTable.HeldRequests()
    {
        var held = new List<LiveRequest>();
        ForEachSlot(slot =>
        {
            if (_held[slot].Live is { } live)
            {
                held.Add(live);
            }
        });
        return held;
    }

    /// <summary>Visits every slot, taking the lock for <see cref="ListingBatch"/> slots at a time so that a listing never holds it for the whole table.</summary>
    /// <remarks>The table only grows, so a slot index stays valid between batches; what changes meanwhile is seen or not, as with any listing of a live table.</remarks>
    private void ForEachSlot(Action<int> visit)
    {
        for (int start = 0; ; start += ListingBatch)
        {
            using (EnterGate())
            {
                if (start >= _used)
                {
                    return;
                }

                for (int slot = start, end = Math.Min(start + ListingBatch, _used); slot < end; slot++)
                {
                    visit(slot);
                }
            }
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
        DropSettledHeads();
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

        // A live request keeps the payload itself, and lets it go when it finishes.
        _held[slot] = new Held { Id = id, ContentType = contentType, Payload = live is null ? payload : default, Live = live };
        _count++;
        if (live is not null)
        {
            live.StoreSlot = slot;
            live.StoreGeneration = entry.Generation;
            _unsettled.Enqueue(new SlotVersion(slot, entry.Generation));
        }

        return slot;
    }

    /// <summary>The slot of a request that has not expired at <paramref name="now"/>; -1 when absent. Under the lock.</summary>
    private int FindUnexpired(string id, long now)
    {
        int slot = Find(id);
        return slot >= 0 && IsExpired(slot, now) ? -1 : slot;
    }

    /// <summary>The slot of a request, expired or not; -1 when absent. An outcome its lane left is moved in first. Under the lock.</summary>
    private int Find(ReadOnlySpan<char> id) => Find(id, out _);

    /// <inheritdoc cref="Find(ReadOnlySpan{char})"/>
    /// <param name="id">The request id.</param>
    /// <param name="settledText">The result or error settled just now, if one was.</param>
    private int Find(ReadOnlySpan<char> id, out string? settledText)
    {
        settledText = null;
        int found = -1;
        if (SlotRequestId.TryParse(id, out ulong low, out ulong high, out int slot) && slot < _used)
        {
            ref Slot entry = ref _slots[slot];
            if (entry.InUse && !entry.IsNamed && entry.KeyLow == low && entry.KeyHigh == high)
            {
                found = slot;
            }
        }

        // A caller may name a request with a string shaped like a made id: the dictionary has it then.
        if (found < 0 && !(_named.Count > 0 && _namedBySpan.TryGetValue(id, out found)))
        {
            return -1;
        }

        settledText = Settle(found);
        return found;
    }

    /// <summary>The id of the request in <paramref name="slot"/> as a new string. Under the lock.</summary>
    private string IdOf(int slot)
    {
        ref Slot entry = ref _slots[slot];
        if (!entry.IsFinished)
        {
            return _held[slot].Id ?? SlotRequestId.Format(entry.KeyLow, entry.KeyHigh, slot);
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
        using (EnterGate())
        {
            int slot = Find(requestId);
            if (slot < 0 || _slots[slot].IsFinished || !TryClaimOutcome(slot))
            {
                return false;
            }

            live = Finish(slot, state, text, atTicks);
        }

        live?.MarkDone();
        return true;
    }

    /// <summary>Moves an unfinished request's texts into the arena and drops its references. Under the lock.</summary>
    /// <returns>The live request the slot held, withdrawn, whose waiters the caller releases outside the lock (a settled one is done already).</returns>
    /// <remarks>When the result expires before the timer is set to fire, the timer is moved when the lock is left.</remarks>
    private LiveRequest? Finish(int slot, AsyncRequestState state, string text, long atTicks)
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
        _finished.Enqueue(new SlotVersion(slot, entry.Generation));
        if (atTicks + _retentionTicks < _expiryDue)
        {
            _rescheduleAt = _expiryDue = atTicks + _retentionTicks;
        }

        return live;
    }

    /// <summary>Moves the outcome the slot's lane left on its live request into the entry, if it has left one.</summary>
    /// <returns>The result or error moved in, or null when there was none to move.</returns>
    private string? Settle(int slot)
    {
        if (_held[slot].Live is not { } live || !live.TryGetOutcome(out string text, out bool failed, out long atTicks))
        {
            return null;
        }

        Finish(slot, failed ? AsyncRequestState.Failed : AsyncRequestState.Completed, text, atTicks);
        return text;
    }

    /// <summary>Before the table ends an unfinished entry itself: false when its lane left an outcome first (settled now; the entry is finished).</summary>
    private bool TryClaimOutcome(int slot)
    {
        if (_held[slot].Live is not { } live || live.TryClaimOutcome())
        {
            return true;
        }

        Settle(slot); // the lane's TrySetOutcome won; it marks the request done itself if it has not yet
        return false;
    }

    /// <summary>Drops the queue's oldest items while they are stale; never looks at a live request (whose lines a lane may hold).</summary>
    private void DropSettledHeads()
    {
        while (_unsettled.TryPeek(out SlotVersion oldest) && !IsUnsettled(oldest))
        {
            _unsettled.Dequeue();
        }

        // A long-running request at the head keeps the stale items behind it queued: drop those now and then.
        if (_unsettled.Count > (2 * _count) + 64)
        {
            SettleAll();
        }
    }

    /// <summary>Settles every entry whose lane has left an outcome, and drops the queue's stale items.</summary>
    private void SettleAll()
    {
        for (int left = _unsettled.Count; left > 0; left--)
        {
            SlotVersion item = _unsettled.Dequeue();
            if (IsUnsettled(item))
            {
                Settle(item.Slot);
                if (!_slots[item.Slot].IsFinished)
                {
                    _unsettled.Enqueue(item);
                }
            }
        }
    }

    private bool IsUnsettled(SlotVersion item) => IsCurrent(item) && !_slots[item.Slot].IsFinished && _held[item.Slot].Live is not null;

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
        return new GateScope(this);
    }

    /// <summary>Leaves the lock, then moves the expiry timer earlier if a result finished under it asked to (never under the lock: a timer may call back at once).</summary>
    private void ExitGate()
    {
        long rescheduleAt = _rescheduleAt;
        _rescheduleAt = 0;
        _gate.Exit(useMemoryBarrier: false);
        if (rescheduleAt != 0)
        {
            ScheduleExpiry(rescheduleAt, NowTicks());
        }
    }

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private bool IsExpired(int slot, long now) => _slots[slot].IsFinished && now - _slots[slot].UpdatedTicks >= _retentionTicks;

    private bool IsCurrent(SlotVersion item) => _slots[item.Slot].InUse && _slots[item.Slot].Generation == item.Generation;

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

    /// <summary>Sets the expiry timer to fire at <paramref name="expireAt"/> (UTC ticks). Outside the lock.</summary>
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
        bool more;
        using (EnterGate())
        {
            SettleAll();
            RemoveExpired(now, ListingBatch, out more);
            _rescheduleAt = 0; // the timer is set below, once
        }

        if (more)
        {
            RemoveExpiredInBatches(now);
        }

        using (EnterGate())
        {
            while (_finished.TryPeek(out SlotVersion oldest))
            {
                if (IsCurrent(oldest))
                {
                    next = _slots[oldest.Slot].UpdatedTicks + _retentionTicks;
                    break;
                }

                _finished.Dequeue();
            }

            _expiryDue = next;
            _rescheduleAt = 0; // set just below
        }

        if (next != long.MaxValue)
        {
            ScheduleExpiry(next, now);
        }
    }

    /// <summary>Evicts expired results, then the oldest finished one if still full. Under the lock.</summary>
    private void MakeRoom(long now)
    {
        if (RemoveExpired(now, ListingBatch, out _) > 0)
        {
            return;
        }

        for (int pass = 0; pass < 2; pass++)
        {
            while (_finished.TryDequeue(out SlotVersion oldest))
            {
                if (IsCurrent(oldest))
                {
                    Remove(oldest.Slot);
                    return;
                }
            }

            SettleAll(); // nothing settled is left to evict: settle whatever the lanes have finished
        }

        throw new AsyncStoreFullException($"The in-memory result store holds {_count} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
    }

    /// <summary>Removes every expired result, taking the lock for one batch at a time so that a burst of expiries never holds it long.</summary>
    private int RemoveExpiredInBatches(long now)
    {
        int removed = 0;
        for (bool more = true; more;)
        {
            using (EnterGate())
            {
                removed += RemoveExpired(now, ListingBatch, out more);
            }
        }

        return removed;
    }

    /// <summary>Removes expired results from the front of the completion order (the oldest finish first), looking at most at <paramref name="limit"/> items. Under the lock.</summary>
    /// <param name="now">Now (UTC ticks).</param>
    /// <param name="limit">How many items of the completion order to look at, at most.</param>
    /// <param name="more">Whether it stopped at the limit, with expired results perhaps left.</param>
    private int RemoveExpired(long now, int limit, out bool more)
    {
        int removed = 0;
        more = false;
        while (_finished.TryPeek(out SlotVersion oldest))
        {
            if (limit-- == 0)
            {
                more = true;
                break;
            }

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
            Payload = !includePayload || finished ? ReadOnlyMemory<byte>.Empty : _held[slot].Live is { } live ? live.Payload : _held[slot].Payload,
            ResultJson = entry.State == AsyncRequestState.Completed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            Error = entry.State == AsyncRequestState.Failed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            SubmittedAt = new DateTimeOffset(entry.SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(updatedTicks, TimeSpan.Zero),
        };
    }

    private readonly record struct SlotVersion(int Slot, int Generation);

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
    private readonly ref struct GateScope(InMemoryAsyncResultStore store)
    {
        public void Dispose() => store.ExitGate();
    }
}
