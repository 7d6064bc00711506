using System.Collections.Concurrent;

namespace Servables.Async;

/// <summary>A finished request in a store's completion order: its shard, slot and the slot's generation then (a stale item no longer matches).</summary>
internal readonly record struct FinishedItem(int Shard, int Slot, int Generation);

/// <summary>One shard of an <see cref="InMemoryAsyncResultStore"/>: a slot table of plain values, a hash index, a text arena and a completion order, under one lock.</summary>
/// <remarks>
/// A finished request costs the garbage collector nothing: its texts live in the arena and its
/// slot holds no references; only unfinished requests hold references (<see cref="Held"/>).
/// The store's entry count (<see cref="EntryCount"/>) and completion order are shared by all shards.
/// Thread-safe.
/// </remarks>
internal sealed class RequestShard(int index, long retentionTicks, EntryCount count, ConcurrentQueue<FinishedItem> completionOrder)
{
    private const int InitialCapacity = 64;

    private readonly Lock _gate = new();
    private readonly TextArena _texts = new();

    // A hash index over slots: a bucket holds its first slot + 1 (0: empty); slots chain through Slot.Next.
    private int[] _buckets = new int[InitialCapacity];
    private Slot[] _slots = new Slot[InitialCapacity];

    // What unfinished requests hold by reference, by slot; the only references a shard keeps.
    private Held[] _held = new Held[InitialCapacity];
    private int _used;
    private int _free = -1;

    /// <summary>Where <see cref="TryAdd"/> left a request.</summary>
    public enum AddOutcome
    {
        /// <summary>Stored.</summary>
        Added,

        /// <summary>A request with that id exists and has not expired.</summary>
        Exists,

        /// <summary>The store is full: evict the oldest finished request, then try again.</summary>
        Full,
    }

    /// <summary>Adds a request; an expired one with the same id is replaced.</summary>
    public AddOutcome TryAdd(string id, int hash, string contentType, ReadOnlyMemory<byte> payload, long submittedTicks, long updatedTicks, LiveRequest? live, long now)
    {
        lock (_gate)
        {
            int existing = Find(id, hash);
            if (existing >= 0)
            {
                if (!IsExpired(existing, now))
                {
                    return AddOutcome.Exists;
                }

                Remove(existing);
            }

            if (!count.TryReserve())
            {
                return AddOutcome.Full;
            }

            int slot = Allocate();
            ref Slot entry = ref _slots[slot];
            entry.HashCode = hash;
            entry.InUse = true;
            entry.State = AsyncRequestState.InQueue;
            entry.SubmittedTicks = submittedTicks;
            entry.UpdatedTicks = updatedTicks;
            entry.Texts = default;
            int bucket = BucketOf(hash);
            entry.Next = _buckets[bucket] - 1;
            _buckets[bucket] = slot + 1;
            _held[slot] = new Held { Id = id, ContentType = contentType, Payload = payload, Live = live };
            if (live is not null)
            {
                live.StoreShard = index;
                live.StoreSlot = slot;
                live.StoreGeneration = entry.Generation;
            }

            return AddOutcome.Added;
        }
    }

    /// <summary>Removes the request an item of the completion order stands for; false when it is gone already (the item is stale).</summary>
    public bool TryRemove(FinishedItem item)
    {
        lock (_gate)
        {
            if (!IsCurrent(item))
            {
                return false;
            }

            Remove(item.Slot);
            return true;
        }
    }

    /// <summary>Removes the request an item of the completion order stands for if it has expired.</summary>
    /// <returns>Null when the item is stale; otherwise whether the request had expired (and was removed).</returns>
    public bool? TryRemoveExpired(FinishedItem item, long now)
    {
        lock (_gate)
        {
            if (!IsCurrent(item))
            {
                return null;
            }

            if (!IsExpired(item.Slot, now))
            {
                return false;
            }

            Remove(item.Slot);
            return true;
        }
    }

    public AsyncRequestRecord? Get(string id, int hash, bool includePayload, long now)
    {
        lock (_gate)
        {
            int slot = FindUnexpired(id, hash, now);
            return slot < 0 ? null : ToRecord(slot, includePayload);
        }
    }

    /// <summary>The request's status (null when absent or expired), and its live request when unfinished.</summary>
    public (AsyncRequestStatus? Status, LiveRequest? Live) Read(string id, int hash, long now)
    {
        lock (_gate)
        {
            int slot = FindUnexpired(id, hash, now);
            if (slot < 0)
            {
                return (null, null);
            }

            ref Slot entry = ref _slots[slot];
            string? text = entry.IsFinished ? _texts.GetString(entry.Texts, TextPart.Text) : null;
            var status = new AsyncRequestStatus(
                id,
                entry.State,
                entry.State == AsyncRequestState.Completed ? text : null,
                entry.State == AsyncRequestState.Failed ? text : null,
                new DateTimeOffset(entry.UpdatedTicks, TimeSpan.Zero));
            return (status, entry.IsFinished ? null : _held[slot].Live);
        }
    }

    public bool Start(string id, int hash, long atTicks)
    {
        lock (_gate)
        {
            return Start(Find(id, hash), atTicks);
        }
    }

    public bool Start(LiveRequest request, long atTicks)
    {
        lock (_gate)
        {
            return Start(SlotOf(request), atTicks);
        }
    }

    /// <summary>Finishes an unfinished request; false when it is absent or already finished. <paramref name="live"/> is the live request it held, whose waiters the caller releases.</summary>
    public bool Finish(string id, int hash, AsyncRequestState state, string text, long atTicks, out LiveRequest? live)
    {
        lock (_gate)
        {
            int slot = Find(id, hash);
            live = null;
            if (slot < 0 || _slots[slot].IsFinished)
            {
                return false;
            }

            live = FinishLocked(slot, state, text, atTicks);
            return true;
        }
    }

    public bool Finish(LiveRequest request, AsyncRequestState state, string text, long atTicks)
    {
        lock (_gate)
        {
            int slot = SlotOf(request);
            if (slot < 0 || _slots[slot].IsFinished)
            {
                return false;
            }

            FinishLocked(slot, state, text, atTicks);
            return true;
        }
    }

    /// <summary>Fails a request that is still queued; false otherwise.</summary>
    public bool FailQueued(string id, int hash, string error, long atTicks, long now, out LiveRequest? live)
    {
        lock (_gate)
        {
            int slot = FindUnexpired(id, hash, now);
            live = null;
            if (slot < 0 || _slots[slot].State != AsyncRequestState.InQueue)
            {
                return false;
            }

            live = FinishLocked(slot, AsyncRequestState.Failed, error, atTicks);
            return true;
        }
    }

    /// <summary>Forgets the live request of an unfinished request (its waiters then read the store).</summary>
    public void Release(LiveRequest request)
    {
        lock (_gate)
        {
            int slot = SlotOf(request);
            if (slot >= 0 && ReferenceEquals(_held[slot].Live, request))
            {
                _held[slot].Live = null;
            }
        }
    }

    public void CollectHeld(List<LiveRequest> held)
    {
        lock (_gate)
        {
            for (int slot = 0; slot < _used; slot++)
            {
                if (_held[slot].Live is { } live)
                {
                    held.Add(live);
                }
            }
        }
    }

    public void CollectUnfinished(List<(long Submitted, AsyncRequestRecord Record)> unfinished)
    {
        lock (_gate)
        {
            for (int slot = 0; slot < _used; slot++)
            {
                if (_slots[slot].InUse && !_slots[slot].IsFinished)
                {
                    unfinished.Add((_slots[slot].SubmittedTicks, ToRecord(slot, includePayload: true)));
                }
            }
        }
    }

    private int BucketOf(int hash) => hash & (_buckets.Length - 1);

    private int FindUnexpired(string id, int hash, long now)
    {
        int slot = Find(id, hash);
        return slot >= 0 && IsExpired(slot, now) ? -1 : slot;
    }

    private int Find(string id, int hash)
    {
        for (int slot = _buckets[BucketOf(hash)] - 1; slot >= 0; slot = _slots[slot].Next)
        {
            if (_slots[slot].HashCode == hash && IdEquals(slot, id))
            {
                return slot;
            }
        }

        return -1;
    }

    private bool IdEquals(int slot, string id) =>
        _slots[slot].IsFinished
            ? _texts.Get(_slots[slot].Texts, TextPart.Id).SequenceEqual(id)
            : string.Equals(_held[slot].Id, id, StringComparison.Ordinal);

    /// <summary>The slot a live request was given, if it still stands for that request.</summary>
    private int SlotOf(LiveRequest request)
    {
        int slot = request.StoreSlot;
        return request.StoreShard == index && slot >= 0 && slot < _used && _slots[slot].InUse && _slots[slot].Generation == request.StoreGeneration ? slot : -1;
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

    /// <summary>Moves an unfinished request's texts into the arena and drops its references; returns the live request it held.</summary>
    private LiveRequest? FinishLocked(int slot, AsyncRequestState state, string text, long atTicks)
    {
        ref Slot entry = ref _slots[slot];
        ref Held held = ref _held[slot];
        entry.Texts = _texts.Add(held.Id!, held.ContentType!, text);
        entry.State = state;
        entry.UpdatedTicks = atTicks;
        LiveRequest? live = held.Live;
        held = default;
        completionOrder.Enqueue(new FinishedItem(index, slot, entry.Generation));
        return live;
    }

    private int Allocate()
    {
        if (_free >= 0)
        {
            int reused = _free;
            _free = _slots[reused].Next;
            return reused;
        }

        if (_used == _slots.Length)
        {
            Grow();
        }

        return _used++;
    }

    /// <summary>Doubles the slots and rebuilds the hash index.</summary>
    private void Grow()
    {
        int size = _slots.Length * 2;
        Array.Resize(ref _slots, size);
        Array.Resize(ref _held, size);
        _buckets = new int[size];
        for (int slot = 0; slot < _used; slot++)
        {
            if (_slots[slot].InUse)
            {
                int bucket = BucketOf(_slots[slot].HashCode);
                _slots[slot].Next = _buckets[bucket] - 1;
                _buckets[bucket] = slot + 1;
            }
        }
    }

    /// <summary>Unlinks a slot from the index, frees its texts, puts it on the free list and gives its count back.</summary>
    private void Remove(int slot)
    {
        ref Slot entry = ref _slots[slot];
        int bucket = BucketOf(entry.HashCode);
        if (_buckets[bucket] - 1 == slot)
        {
            _buckets[bucket] = entry.Next + 1;
        }
        else
        {
            int previous = _buckets[bucket] - 1;
            while (_slots[previous].Next != slot)
            {
                previous = _slots[previous].Next;
            }

            _slots[previous].Next = entry.Next;
        }

        if (entry.IsFinished)
        {
            _texts.Release(entry.Texts);
        }

        _held[slot] = default;
        entry.InUse = false;
        entry.Generation++;
        entry.Next = _free;
        _free = slot;
        count.Release();
    }

    private bool IsExpired(int slot, long now) => _slots[slot].IsFinished && now - _slots[slot].UpdatedTicks >= retentionTicks;

    private bool IsCurrent(FinishedItem item) => item.Shard == index && _slots[item.Slot].InUse && _slots[item.Slot].Generation == item.Generation;

    private AsyncRequestRecord ToRecord(int slot, bool includePayload)
    {
        ref Slot entry = ref _slots[slot];
        bool finished = entry.IsFinished;
        return new AsyncRequestRecord
        {
            Id = finished ? _texts.GetString(entry.Texts, TextPart.Id) : _held[slot].Id!,
            State = entry.State,
            ContentType = finished ? _texts.GetString(entry.Texts, TextPart.ContentType) : _held[slot].ContentType!,
            Payload = includePayload && !finished ? _held[slot].Payload : ReadOnlyMemory<byte>.Empty,
            ResultJson = entry.State == AsyncRequestState.Completed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            Error = entry.State == AsyncRequestState.Failed ? _texts.GetString(entry.Texts, TextPart.Text) : null,
            SubmittedAt = new DateTimeOffset(entry.SubmittedTicks, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(entry.UpdatedTicks, TimeSpan.Zero),
        };
    }

    /// <summary>One request's plain values; holds no references, so the collector never scans the array.</summary>
    private struct Slot
    {
        public int HashCode;
        public int Next;
        public int Generation;
        public AsyncRequestState State;
        public bool InUse;
        public long SubmittedTicks;
        public long UpdatedTicks;
        public TextRef Texts;

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
}
