namespace Servables.Async;

/// <summary>The default result store: requests and results in process memory, bounded, lost on restart.</summary>
/// <remarks>
/// <para>
/// Bounded by <see cref="AsyncResultStoreOptions.MaxEntries"/>: when full it evicts expired results
/// first, then the oldest finished ones; unfinished requests are never evicted (a store full of them
/// refuses new requests). A result stays readable for the retention period from when it finished; a
/// timer removes results as they expire. Dispose the store to stop the timer.
/// </para>
/// <para>
/// Requests live in a table of slots that grows by whole pages (never copied). A slot's plain values
/// are a struct without references; what an unfinished request holds by reference (its live request,
/// or a record's id, content type and payload) sits beside it. When it finishes, its id, content type
/// and result are copied into a <see cref="TextArena"/>, so a store holding results for days adds no
/// objects for the collector to trace (a result longer than an arena chunk is kept as its string).
/// </para>
/// <para>
/// Requests an async API submits get ids made here (<see cref="SlotRequestId"/>), which name their
/// slot; ids given from outside are found through a dictionary. An async API's lanes never take the
/// lock: a lane leaves each outcome on the request's <see cref="LiveRequest"/>, and the store moves it
/// into the slot ("settles" it) the next time it looks the slot up, or when it needs room or expires
/// results, so that the lock and the table's cache lines stay with the submitting and reading threads.
/// A request's state is the slot's, except that a live request a lane has started is in progress
/// (<see cref="StateOf"/>).
/// </para>
/// <para>
/// Thread-safe: one spin lock, held for constant work per call; whole-store work (settling everything,
/// a burst of expiries, listings) takes it for 256 slots at a time.
/// </para>
/// </remarks>
public sealed class InMemoryAsyncResultStore : IAsyncResultStore, IAsyncRequestTable
{
    private const int Batch = 256;

    private SpinLock _gate = new(enableThreadOwnerTracking: false);
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly ulong _idSecret;
    private readonly TextArena _texts = new();
    private readonly Dictionary<string, int> _named = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _namedBySpan;
    private RequestSlots _slots; // a mutable struct: never copied
    private int _count;

    // Removes results as they expire; _expiryDue is when it is set to fire (UTC ticks; MaxValue: not set). Under the lock.
    private readonly WeakTimer<InMemoryAsyncResultStore> _expiryTimer;
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
        _slots = new RequestSlots(_maxEntries);
        _namedBySpan = _named.GetAlternateLookup<ReadOnlySpan<char>>();
        AsyncRequestIds.NextKey(out _idSecret, out _);
        _expiryTimer = new WeakTimer<InMemoryAsyncResultStore>(_time, this, static store => store.SettleAndExpire());
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

    /// <summary>How many slots hold a live request (whose lane may leave an outcome); tests check it stays bounded.</summary>
    internal int LiveRequestCount
    {
        get
        {
            using (EnterGate())
            {
                return _slots.LiveCount;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Id);
        ArgumentNullException.ThrowIfNull(request.ContentType);
        cancellationToken.ThrowIfCancellationRequested();
        var held = new SlotReferences { Id = request.Id, ContentType = request.ContentType, Payload = request.Payload };
        return new ValueTask<bool>(Add(default, held, request.SubmittedAt.UtcTicks, request.UpdatedAt.UtcTicks, NowTicks()) >= 0);
    }

    /// <inheritdoc />
    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        long now = NowTicks();
        using (EnterGate())
        {
            int slot = Find(requestId, now, out _);
            return new ValueTask<AsyncRequestRecord?>(slot < 0 ? null : ToRecord(slot, includePayload));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        using (EnterGate())
        {
            int slot = Find(requestId, long.MinValue, out _);
            if (slot < 0 || _slots[slot].State != AsyncRequestState.InQueue)
            {
                return new ValueTask<bool>(false);
            }

            if (_slots.References(slot).Live is { } live)
            {
                return new ValueTask<bool>(live.TryStart(at.UtcTicks)); // the start is kept on the live request
            }

            (_slots[slot].State, _slots[slot].UpdatedTicks) = (AsyncRequestState.InProgress, at.UtcTicks);
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return new ValueTask<bool>(FinishById(requestId, AsyncRequestState.Completed, resultJson, at.UtcTicks, queuedOnly: false));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return new ValueTask<bool>(FinishById(requestId, AsyncRequestState.Failed, errorText, at.UtcTicks, queuedOnly: false));
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
    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => new(SettleAndExpire());

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
        var held = new SlotReferences { Id = request.HasId ? request.Id : null, ContentType = request.ContentType, Live = request }; // the live request keeps the payload
        (ulong low, ulong high) key = default;
        if (held.Id is null)
        {
            AsyncRequestIds.NextKey(out key.low, out key.high); // drawn outside the lock, the id spelt after it
            key.high &= SlotRequestId.RandomHighMask;
        }

        int slot = Add(key, held, submitted, submitted, submitted);
        if (slot < 0)
        {
            request.MarkDone();
            return new ValueTask<bool>(false);
        }

        if (held.Id is null)
        {
            request.Id = SlotRequestId.Format(key.low, key.high, slot, _idSecret);
        }

        return new ValueTask<bool>(true);
    }

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryStartAsync(LiveRequest request, DateTimeOffset at) =>
        new(request.TryStart(at.UtcTicks)); // no lock: the start is kept on the live request, which a finish or a cancel ends first

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFinishAsync(LiveRequest request, string? resultJson, string? error, DateTimeOffset at) =>
        new(request.TrySetOutcome(resultJson, error, at.UtcTicks)); // no lock: settled into the slot when the store next looks

    /// <inheritdoc />
    ValueTask<bool> IAsyncRequestTable.TryFailQueuedAsync(string requestId, string error, DateTimeOffset at, CancellationToken cancellationToken) =>
        new(FinishById(requestId, AsyncRequestState.Failed, error, at.UtcTicks, queuedOnly: true));

    /// <inheritdoc />
    ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> IAsyncRequestTable.ReadAsync(string requestId, CancellationToken cancellationToken)
    {
        long now = NowTicks(); // outside the lock
        using (EnterGate())
        {
            int slot = Find(requestId, now, out string? settledText);
            if (slot < 0)
            {
                return new((AsyncRequestStatus.NotFound(requestId), null));
            }

            AsyncRequestState state = StateOf(slot, out long updatedTicks);
            bool finished = _slots[slot].IsFinished;
            string? text = finished ? settledText ?? TextOf(slot, TextPart.Text) : null; // the read that settled it has the lane's string
            var status = new AsyncRequestStatus(
                requestId,
                state,
                state == AsyncRequestState.Completed ? text : null,
                state == AsyncRequestState.Failed ? text : null,
                new DateTimeOffset(updatedTicks, TimeSpan.Zero));
            return new((status, finished ? null : _slots.References(slot).Live));
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
            if (slot >= 0 && !Settle(slot, out _))
            {
                _slots.UnmarkLive(slot);
                (_slots.References(slot).Live, _slots.References(slot).Payload) = (null, request.Payload); // the entry stays unfinished and describes itself
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
            if (_slots.References(slot).Live is { } live)
            {
                held.Add(live);
            }
        });
        return held;
    }

    /// <inheritdoc />
    ValueTask<(IReadOnlyList<LiveRequest> Requests, string? Next)> IAsyncRequestTable.RecoverPageAsync(string? afterId, int maxCount, CancellationToken cancellationToken) => new(([], null));

    /// <summary>Adds a request (a made id when <paramref name="held"/> has none: the key is its random bits).</summary>
    /// <returns>Its slot; -1 when a request with its id exists and has not expired.</returns>
    /// <exception cref="AsyncStoreFullException">The store is full of unfinished requests.</exception>
    private int Add((ulong Low, ulong High) key, SlotReferences held, long submittedTicks, long updatedTicks, long now)
    {
        for (int attempt = 0; ; attempt++)
        {
            using (EnterGate())
            {
                if (held.Id is not null && Find(held.Id, now, out _) >= 0)
                {
                    return -1;
                }

                if (_count < _maxEntries || MakeRoom(now))
                {
                    int slot = _slots.Allocate();
                    ref SlotValues entry = ref _slots[slot];
                    (entry.KeyLow, entry.KeyHigh, entry.SubmittedTicks, entry.UpdatedTicks) = (key.Low, key.High, submittedTicks, updatedTicks);
                    (entry.State, entry.IsNamed) = (AsyncRequestState.InQueue, held.Id is not null);
                    _slots.References(slot) = held;
                    if (held.Id is not null)
                    {
                        _named.Add(held.Id, slot);
                    }

                    if (held.Live is { } live)
                    {
                        (live.StoreSlot, live.StoreGeneration) = (slot, _slots[slot].Generation);
                        _slots.MarkLive(slot);
                    }

                    _count++;
                    return slot;
                }
            }

            if (attempt > 0)
            {
                throw new AsyncStoreFullException($"The in-memory result store holds {_maxEntries} unfinished requests, its limit (MaxEntries). Let the queue drain or raise MaxEntries.");
            }

            SettleAll(); // outcomes the lanes left, further back than MakeRoom looks
        }
    }

    /// <summary>Evicts an expired result, or else the oldest finished one, settling the oldest live requests if none is finished. Under the lock.</summary>
    /// <returns>False when no finished request was found close at hand.</returns>
    private bool MakeRoom(long now)
    {
        if (RemoveExpired(now) > 0)
        {
            return true;
        }

        for (int slot = _slots.OldestLive, looked = 0; _slots.OldestFinished < 0 && slot >= 0 && looked < Batch; looked++)
        {
            int next = _slots[slot].Next;
            Settle(slot, out _);
            slot = next;
        }

        if (_slots.OldestFinished < 0)
        {
            return false;
        }

        Remove(_slots.OldestFinished);
        return true;
    }

    /// <summary>The slot of an unexpired request (expired ones are removed; <paramref name="now"/> MinValue: no check); -1 when absent. An outcome its lane left is settled first. Under the lock.</summary>
    private int Find(ReadOnlySpan<char> id, long now, out string? settledText)
    {
        settledText = null;
        int found = -1;
        if (SlotRequestId.TryParse(id, _idSecret, out ulong low, out ulong high, out int slot) && slot < _slots.Used)
        {
            ref SlotValues entry = ref _slots[slot];
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

        Settle(found, out settledText);
        ref SlotValues values = ref _slots[found];
        if (now != long.MinValue && values.IsFinished && now - values.UpdatedTicks >= _retentionTicks)
        {
            Remove(found); // a result settled out of finishing order may outlive the timer's pass
            return -1;
        }

        return found;
    }

    /// <summary>A request's state and when it last changed: a lane keeps the start on the live request. Under the lock, after settling.</summary>
    private AsyncRequestState StateOf(int slot, out long updatedTicks)
    {
        ref SlotValues values = ref _slots[slot];
        if (!values.IsFinished && _slots.References(slot).Live is { IsStarted: true } live)
        {
            updatedTicks = live.StartedTicks;
            return AsyncRequestState.InProgress;
        }

        updatedTicks = values.UpdatedTicks;
        return values.State;
    }

    /// <summary>Ends an unfinished request by id (a finish by the store's API, or a caller's cancel of a queued one).</summary>
    private bool FinishById(string requestId, AsyncRequestState state, string text, long atTicks, bool queuedOnly)
    {
        LiveRequest? live;
        using (EnterGate())
        {
            int slot = Find(requestId, long.MinValue, out _); // an unfinished request never expires
            if (slot < 0 || _slots[slot].IsFinished || (queuedOnly && _slots[slot].State != AsyncRequestState.InQueue))
            {
                return false;
            }

            live = _slots.References(slot).Live;
            if (live is not null && !(queuedOnly ? live.TryWithdraw() : live.TryClaimOutcome()))
            {
                Settle(slot, out _); // its lane started it, or left an outcome first
                return false;
            }

            Finish(slot, state, text, atTicks);
        }

        if (live is not null)
        {
            if (queuedOnly)
            {
                live.CancelByCaller();
            }

            live.MarkDone();
        }

        return true;
    }

    /// <summary>Moves the outcome a lane left on the slot's live request into the slot, if it left one. Under the lock.</summary>
    /// <param name="slot">The slot.</param>
    /// <param name="text">The result or error settled, or null.</param>
    private bool Settle(int slot, out string? text)
    {
        text = null;
        if (_slots.References(slot).Live is not { } live || !live.TryGetOutcome(out string outcome, out bool failed, out long atTicks))
        {
            return false;
        }

        Finish(slot, failed ? AsyncRequestState.Failed : AsyncRequestState.Completed, text = outcome, atTicks);
        return true;
    }

    private void Settle(int slot) => Settle(slot, out _);

    /// <summary>Copies a request's texts into the arena and drops its references. Under the lock.</summary>
    /// <remarks>When the result expires before the timer is set to fire, the timer is moved when the lock is left.</remarks>
    private void Finish(int slot, AsyncRequestState state, string text, long atTicks)
    {
        ref SlotValues entry = ref _slots[slot];
        ref SlotReferences held = ref _slots.References(slot);
        if (held.Live is not null)
        {
            _slots.UnmarkLive(slot);
        }

        // A made id is spelt again from the slot's key when asked for: only named ids take room here.
        string id = held.Id ?? string.Empty;
        entry.InArena = id.Length + held.ContentType!.Length + text.Length <= TextArena.ChunkChars;
        if (entry.InArena)
        {
            entry.Texts = _texts.Add(id, held.ContentType, text);
            held = default;
        }
        else
        {
            held = new SlotReferences { Id = held.Id, ContentType = held.ContentType, Text = text }; // never copied under the lock
        }

        (entry.State, entry.UpdatedTicks) = (state, atTicks);
        _slots.MarkFinished(slot);
        if (atTicks + _retentionTicks < _expiryDue)
        {
            _rescheduleAt = _expiryDue = atTicks + _retentionTicks;
        }
    }

    /// <summary>Settles every outcome the lanes have left, taking the lock for <see cref="Batch"/> slots at a time.</summary>
    private void SettleAll() => ForEachSlot(Settle);

    /// <summary>Drops a request: its index entry, its texts; puts the slot on the free list. Under the lock.</summary>
    private void Remove(int slot)
    {
        ref SlotValues entry = ref _slots[slot];
        if (entry.IsNamed)
        {
            _namedBySpan.Remove(entry.InArena ? _texts.Get(entry.Texts, TextPart.Id) : _slots.References(slot).Id);
        }

        if (entry.IsFinished)
        {
            _slots.UnmarkFinished(slot);
            if (entry.InArena)
            {
                _texts.Release(entry.Texts);
            }
        }
        else if (_slots.References(slot).Live is not null)
        {
            _slots.UnmarkLive(slot);
        }

        _slots.Free(slot);
        _count--;
    }

    /// <summary>The slot a live request was given, if it still stands for that request. Under the lock.</summary>
    private int SlotOf(LiveRequest request)
    {
        int slot = request.StoreSlot;
        return slot >= 0 && slot < _slots.Used && _slots[slot].InUse && _slots[slot].Generation == request.StoreGeneration && ReferenceEquals(_slots.References(slot).Live, request) ? slot : -1;
    }

    private string TextOf(int slot, TextPart part) => _slots[slot].InArena
        ? _texts.GetString(_slots[slot].Texts, part)
        : part switch { TextPart.Id => _slots.References(slot).Id!, TextPart.ContentType => _slots.References(slot).ContentType!, _ => _slots.References(slot).Text! };

    private string IdOf(int slot) => _slots[slot].IsNamed
        ? (_slots[slot].IsFinished ? TextOf(slot, TextPart.Id) : _slots.References(slot).Id!)
        : SlotRequestId.Format(_slots[slot].KeyLow, _slots[slot].KeyHigh, slot, _idSecret);

    private AsyncRequestRecord ToRecord(int slot, bool includePayload)
    {
        bool finished = _slots[slot].IsFinished;
        AsyncRequestState state = StateOf(slot, out long updatedTicks);
        ref SlotReferences held = ref _slots.References(slot);
        return new AsyncRequestRecord
        {
            Id = IdOf(slot),
            State = state,
            ContentType = finished ? TextOf(slot, TextPart.ContentType) : held.ContentType!,
            Payload = !includePayload || finished ? ReadOnlyMemory<byte>.Empty : held.Live is { } live ? live.Payload : held.Payload,
            ResultJson = state == AsyncRequestState.Completed ? TextOf(slot, TextPart.Text) : null,
            Error = state == AsyncRequestState.Failed ? TextOf(slot, TextPart.Text) : null,
            SubmittedAt = new DateTimeOffset(_slots[slot].SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(updatedTicks, TimeSpan.Zero),
        };
    }

    /// <summary>Visits every slot in use, taking the lock for <see cref="Batch"/> slots at a time so that no listing or pass holds it for the whole table.</summary>
    /// <remarks>The table only grows, so a slot index stays valid between batches; what changes meanwhile is seen or not, as with any listing of a live table.</remarks>
    /// <param name="visit">What to do with each slot, under the lock.</param>
    /// <param name="holdTimer">Leave the expiry timer as it is (the caller sets it when done).</param>
    private void ForEachSlot(Action<int> visit, bool holdTimer = false)
    {
        for (int start = 0; ; start += Batch)
        {
            using (EnterGate())
            {
                if (start >= _slots.Used)
                {
                    return;
                }

                for (int slot = start, end = Math.Min(start + Batch, _slots.Used); slot < end; slot++)
                {
                    if (_slots[slot].InUse)
                    {
                        visit(slot);
                    }
                }

                _rescheduleAt = holdTimer ? 0 : _rescheduleAt;
            }
        }
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
            _expiryTimer.Set(rescheduleAt - NowTicks());
        }
    }

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    /// <summary>The expiry timer and scan: settles what the lanes left, removes what has expired and sets the timer for the oldest result left.</summary>
    /// <returns>How many results were removed.</returns>
    private int SettleAndExpire()
    {
        ForEachSlot(Settle, holdTimer: true); // the timer is set once, below
        long now = NowTicks();
        int removed = RemoveExpiredInBatches(now);
        long next;
        using (EnterGate())
        {
            next = _slots.OldestFinished < 0 ? long.MaxValue : _slots[_slots.OldestFinished].UpdatedTicks + _retentionTicks;
            _expiryDue = next;
            _rescheduleAt = 0; // set just below
        }

        if (next != long.MaxValue)
        {
            _expiryTimer.Set(next - now);
        }

        return removed;
    }

    /// <summary>Removes every expired result, taking the lock for one batch at a time so that a burst of expiries never holds it long.</summary>
    private int RemoveExpiredInBatches(long now)
    {
        int removed = 0;
        for (int batch = Batch; batch == Batch;)
        {
            using (EnterGate())
            {
                removed += batch = RemoveExpired(now);
            }
        }

        return removed;
    }

    /// <summary>Removes up to <see cref="Batch"/> expired results from the front of the finishing order. Under the lock.</summary>
    private int RemoveExpired(long now)
    {
        int removed = 0;
        while (removed < Batch && _slots.OldestFinished >= 0 && now - _slots[_slots.OldestFinished].UpdatedTicks >= _retentionTicks)
        {
            Remove(_slots.OldestFinished);
            removed++;
        }

        return removed;
    }

    /// <summary>Holds <see cref="_gate"/> until disposed.</summary>
    private readonly ref struct GateScope(InMemoryAsyncResultStore store)
    {
        public void Dispose() => store.ExitGate();
    }
}
