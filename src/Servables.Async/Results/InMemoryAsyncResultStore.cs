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
    private const int PageBits = 10;
    private const int PageSize = 1 << PageBits;
    private const int Batch = 256;

    private SpinLock _gate = new(enableThreadOwnerTracking: false);
    private readonly long _retentionTicks;
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly ulong _idSecret;
    private readonly TextArena _texts = new();
    private readonly Dictionary<string, int> _named = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _namedBySpan;
    private readonly Page?[] _pages;
    private int _used;
    private int _free = -1;
    private int _count;

    // Slots holding a live request, in the order they were added; finished slots, in the order they finished here.
    private SlotList _live = SlotList.Empty;
    private SlotList _finished = SlotList.Empty;

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
        _pages = new Page?[(_maxEntries + PageSize - 1) >> PageBits];
        _namedBySpan = _named.GetAlternateLookup<ReadOnlySpan<char>>();
        AsyncRequestIds.NextKey(out _idSecret, out _);
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

    /// <summary>How many slots hold a live request (whose lane may leave an outcome); tests check it stays bounded.</summary>
    internal int UnsettledQueueLength
    {
        get
        {
            using (EnterGate())
            {
                return _live.Count;
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
        var held = new Held { Id = request.Id, ContentType = request.ContentType, Payload = request.Payload };
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
            if (slot < 0 || At(slot).State != AsyncRequestState.InQueue)
            {
                return new ValueTask<bool>(false);
            }

            if (HeldAt(slot).Live is { } live)
            {
                return new ValueTask<bool>(live.TryStart(at.UtcTicks)); // the start is kept on the live request
            }

            (At(slot).State, At(slot).UpdatedTicks) = (AsyncRequestState.InProgress, at.UtcTicks);
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
            if (At(slot).InUse && !At(slot).IsFinished)
            {
                unfinished.Add((At(slot).SubmittedTicks, ToRecord(slot, includePayload: true)));
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
        var held = new Held { Id = request.HasId ? request.Id : null, ContentType = request.ContentType, Live = request }; // the live request keeps the payload
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
            bool finished = At(slot).IsFinished;
            string? text = finished ? settledText ?? TextOf(slot, TextPart.Text) : null; // the read that settled it has the lane's string
            var status = new AsyncRequestStatus(
                requestId,
                state,
                state == AsyncRequestState.Completed ? text : null,
                state == AsyncRequestState.Failed ? text : null,
                new DateTimeOffset(updatedTicks, TimeSpan.Zero));
            return new((status, finished ? null : HeldAt(slot).Live));
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
                _live.Remove(_pages, slot);
                (HeldAt(slot).Live, HeldAt(slot).Payload) = (null, request.Payload); // the entry stays unfinished and describes itself
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
            if (HeldAt(slot).Live is { } live)
            {
                held.Add(live);
            }
        });
        return held;
    }

    /// <inheritdoc />
    ValueTask<IReadOnlyList<LiveRequest>> IAsyncRequestTable.RecoverAsync(CancellationToken cancellationToken) => new([]);

    /// <summary>Adds a request (a made id when <paramref name="held"/> has none: the key is its random bits).</summary>
    /// <returns>Its slot; -1 when a request with its id exists and has not expired.</returns>
    /// <exception cref="AsyncStoreFullException">The store is full of unfinished requests.</exception>
    private int Add((ulong Low, ulong High) key, Held held, long submittedTicks, long updatedTicks, long now)
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
                    int slot = Allocate();
                    At(slot) = new Slot { KeyLow = key.Low, KeyHigh = key.High, SubmittedTicks = submittedTicks, UpdatedTicks = updatedTicks, Generation = At(slot).Generation, State = AsyncRequestState.InQueue, InUse = true, IsNamed = held.Id is not null };
                    HeldAt(slot) = held;
                    if (held.Id is not null)
                    {
                        _named.Add(held.Id, slot);
                    }

                    if (held.Live is { } live)
                    {
                        (live.StoreSlot, live.StoreGeneration) = (slot, At(slot).Generation);
                        _live.Append(_pages, slot);
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

        for (int slot = _live.Head, looked = 0; _finished.Count == 0 && slot >= 0 && looked < Batch; looked++)
        {
            int next = At(slot).Next;
            Settle(slot, out _);
            slot = next;
        }

        if (_finished.Count == 0)
        {
            return false;
        }

        Remove(_finished.Head);
        return true;
    }

    /// <summary>The slot of an unexpired request (expired ones are removed; <paramref name="now"/> MinValue: no check); -1 when absent. An outcome its lane left is settled first. Under the lock.</summary>
    private int Find(ReadOnlySpan<char> id, long now, out string? settledText)
    {
        settledText = null;
        int found = -1;
        if (SlotRequestId.TryParse(id, _idSecret, out ulong low, out ulong high, out int slot) && slot < _used)
        {
            ref Slot entry = ref At(slot);
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
        if (now != long.MinValue && At(found).IsFinished && now - At(found).UpdatedTicks >= _retentionTicks)
        {
            Remove(found); // a result settled out of finishing order may outlive the timer's pass
            return -1;
        }

        return found;
    }

    /// <summary>A request's state and when it last changed: a lane keeps the start on the live request. Under the lock, after settling.</summary>
    private AsyncRequestState StateOf(int slot, out long updatedTicks)
    {
        if (!At(slot).IsFinished && HeldAt(slot).Live is { IsStarted: true } live)
        {
            updatedTicks = live.StartedTicks;
            return AsyncRequestState.InProgress;
        }

        updatedTicks = At(slot).UpdatedTicks;
        return At(slot).State;
    }

    /// <summary>Ends an unfinished request by id (a finish by the store's API, or a caller's cancel of a queued one).</summary>
    private bool FinishById(string requestId, AsyncRequestState state, string text, long atTicks, bool queuedOnly)
    {
        LiveRequest? live;
        using (EnterGate())
        {
            int slot = Find(requestId, long.MinValue, out _); // an unfinished request never expires
            if (slot < 0 || At(slot).IsFinished || (queuedOnly && At(slot).State != AsyncRequestState.InQueue))
            {
                return false;
            }

            live = HeldAt(slot).Live;
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
        if (HeldAt(slot).Live is not { } live || !live.TryGetOutcome(out string outcome, out bool failed, out long atTicks))
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
        ref Slot entry = ref At(slot);
        ref Held held = ref HeldAt(slot);
        if (held.Live is not null)
        {
            _live.Remove(_pages, slot);
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
            held = new Held { Id = held.Id, ContentType = held.ContentType, Text = text }; // never copied under the lock
        }

        (entry.State, entry.UpdatedTicks) = (state, atTicks);
        _finished.Append(_pages, slot);
        if (atTicks + _retentionTicks < _expiryDue)
        {
            _rescheduleAt = _expiryDue = atTicks + _retentionTicks;
        }
    }

    /// <summary>Settles every outcome the lanes have left, taking the lock for <see cref="Batch"/> slots at a time.</summary>
    private void SettleAll() => ForEachSlot(Settle);

    private int Allocate()
    {
        if (_free >= 0)
        {
            int reused = _free;
            _free = At(reused).Next;
            return reused;
        }

        _pages[_used >> PageBits] ??= new Page(); // a page at a time: the table is never copied
        return _used++;
    }

    /// <summary>Drops a request: its index entry, its texts; puts the slot on the free list. Under the lock.</summary>
    private void Remove(int slot)
    {
        ref Slot entry = ref At(slot);
        if (entry.IsNamed)
        {
            _namedBySpan.Remove(entry.InArena ? _texts.Get(entry.Texts, TextPart.Id) : HeldAt(slot).Id);
        }

        if (entry.IsFinished)
        {
            _finished.Remove(_pages, slot);
            if (entry.InArena)
            {
                _texts.Release(entry.Texts);
            }
        }
        else if (HeldAt(slot).Live is not null)
        {
            _live.Remove(_pages, slot);
        }

        HeldAt(slot) = default;
        (entry.InUse, entry.Generation, entry.Next) = (false, entry.Generation + 1, _free);
        _free = slot;
        _count--;
    }

    /// <summary>The slot a live request was given, if it still stands for that request. Under the lock.</summary>
    private int SlotOf(LiveRequest request)
    {
        int slot = request.StoreSlot;
        return slot >= 0 && slot < _used && At(slot).InUse && At(slot).Generation == request.StoreGeneration && ReferenceEquals(HeldAt(slot).Live, request) ? slot : -1;
    }

    private string TextOf(int slot, TextPart part) => At(slot).InArena
        ? _texts.GetString(At(slot).Texts, part)
        : part switch { TextPart.Id => HeldAt(slot).Id!, TextPart.ContentType => HeldAt(slot).ContentType!, _ => HeldAt(slot).Text! };

    private string IdOf(int slot) => At(slot).IsNamed
        ? (At(slot).IsFinished ? TextOf(slot, TextPart.Id) : HeldAt(slot).Id!)
        : SlotRequestId.Format(At(slot).KeyLow, At(slot).KeyHigh, slot, _idSecret);

    private AsyncRequestRecord ToRecord(int slot, bool includePayload)
    {
        bool finished = At(slot).IsFinished;
        AsyncRequestState state = StateOf(slot, out long updatedTicks);
        ref Held held = ref HeldAt(slot);
        return new AsyncRequestRecord
        {
            Id = IdOf(slot),
            State = state,
            ContentType = finished ? TextOf(slot, TextPart.ContentType) : held.ContentType!,
            Payload = !includePayload || finished ? ReadOnlyMemory<byte>.Empty : held.Live is { } live ? live.Payload : held.Payload,
            ResultJson = state == AsyncRequestState.Completed ? TextOf(slot, TextPart.Text) : null,
            Error = state == AsyncRequestState.Failed ? TextOf(slot, TextPart.Text) : null,
            SubmittedAt = new DateTimeOffset(At(slot).SubmittedTicks, TimeSpan.Zero),
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
                if (start >= _used)
                {
                    return;
                }

                for (int slot = start, end = Math.Min(start + Batch, _used); slot < end; slot++)
                {
                    if (At(slot).InUse)
                    {
                        visit(slot);
                    }
                }

                _rescheduleAt = holdTimer ? 0 : _rescheduleAt;
            }
        }
    }

    private ref Slot At(int slot) => ref _pages[slot >> PageBits]!.Slots[slot & (PageSize - 1)];

    private ref Held HeldAt(int slot) => ref _pages[slot >> PageBits]!.Held[slot & (PageSize - 1)];

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
                        target.SettleAndExpire();
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
            next = _finished.Head < 0 ? long.MaxValue : At(_finished.Head).UpdatedTicks + _retentionTicks;
            _expiryDue = next;
            _rescheduleAt = 0; // set just below
        }

        if (next != long.MaxValue)
        {
            ScheduleExpiry(next, now);
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
        while (removed < Batch && _finished.Head >= 0 && now - At(_finished.Head).UpdatedTicks >= _retentionTicks)
        {
            Remove(_finished.Head);
            removed++;
        }

        return removed;
    }

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

        /// <summary>The neighbours in the slot's list (live, finished or free; -1 at either end).</summary>
        public int Prev;
        public int Next;
        public AsyncRequestState State;
        public bool InUse;

        /// <summary>The id came from outside (not made here): it is in <see cref="_named"/>.</summary>
        public bool IsNamed;

        /// <summary>A finished request's texts are in the arena (else still referenced beside the slot).</summary>
        public bool InArena;

        public readonly bool IsFinished => State is AsyncRequestState.Completed or AsyncRequestState.Failed;
    }

    /// <summary>What a request holds by reference: an unfinished one's id, content type, payload or live request; a long result's texts.</summary>
    private struct Held
    {
        public string? Id;
        public string? ContentType;
        public ReadOnlyMemory<byte> Payload;
        public LiveRequest? Live;
        public string? Text;
    }

    /// <summary>Slots and what they hold by reference, <see cref="PageSize"/> of each (each array under the large object heap's threshold).</summary>
    private sealed class Page
    {
        public readonly Slot[] Slots = new Slot[PageSize];
        public readonly Held[] Held = new Held[PageSize];
    }

    /// <summary>A doubly linked list of slots, through their <see cref="Slot.Prev"/> and <see cref="Slot.Next"/>, oldest first.</summary>
    private struct SlotList
    {
        public static readonly SlotList Empty = new() { Head = -1, Tail = -1 };

        public int Head;
        public int Tail;
        public int Count;

        public void Append(Page?[] pages, int slot)
        {
            ref Slot entry = ref pages[slot >> PageBits]!.Slots[slot & (PageSize - 1)];
            (entry.Prev, entry.Next) = (Tail, -1);
            if (Tail >= 0)
            {
                pages[Tail >> PageBits]!.Slots[Tail & (PageSize - 1)].Next = slot;
            }
            else
            {
                Head = slot;
            }

            Tail = slot;
            Count++;
        }

        public void Remove(Page?[] pages, int slot)
        {
            ref Slot entry = ref pages[slot >> PageBits]!.Slots[slot & (PageSize - 1)];
            if (entry.Prev >= 0)
            {
                pages[entry.Prev >> PageBits]!.Slots[entry.Prev & (PageSize - 1)].Next = entry.Next;
            }
            else
            {
                Head = entry.Next;
            }

            if (entry.Next >= 0)
            {
                pages[entry.Next >> PageBits]!.Slots[entry.Next & (PageSize - 1)].Prev = entry.Prev;
            }
            else
            {
                Tail = entry.Prev;
            }

            Count--;
        }
    }

    /// <summary>Holds <see cref="_gate"/> until disposed.</summary>
    private readonly ref struct GateScope(InMemoryAsyncResultStore store)
    {
        public void Dispose() => store.ExitGate();
    }
}
