using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Servables.Async;

/// <summary>
/// The table of <see cref="InMemoryAsyncResultStore"/>: one slot per request, its plain values in one
/// array and what it holds by reference in another, a free list, and two lists of slots in order
/// (those holding a live request, oldest first; finished ones, in the order they finished).
/// </summary>
/// <remarks>
/// The table grows a page of <see cref="PageSize"/> slots at a time up to its capacity and is never
/// copied, so no call does work that grows with the table. Both arrays of a page stay under the large
/// object heap's threshold, and the plain values hold no references, so the collector never scans
/// them. A freed slot's generation moves on, so a stale reference to it can tell.
/// A mutable struct kept in one field of its owner and never copied; not thread-safe: the owner's lock
/// serialises every call.
/// </remarks>
internal struct RequestSlots
{
    /// <summary>Slots in a page.</summary>
    public const int PageSize = 1 << PageBits;

    private const int PageBits = 10;

    // Pages of both arrays; a page's arrays are allocated together.
    private readonly SlotValues[]?[] _values;
    private readonly SlotReferences[]?[] _references;
    private int _free;
    private SlotList _live;
    private SlotList _finished;

    /// <summary>A table for up to <paramref name="capacity"/> slots in use at once.</summary>
    public RequestSlots(int capacity)
    {
        int pages = (capacity + PageSize - 1) >> PageBits;
        (_values, _references) = (new SlotValues[]?[pages], new SlotReferences[]?[pages]);
        (_free, _live, _finished) = (-1, SlotList.Empty, SlotList.Empty);
    }

    /// <summary>How many slots were ever handed out: every slot in use is below this.</summary>
    public int Used { get; private set; }

    /// <summary>The oldest slot holding a live request; -1 when none.</summary>
    public readonly int OldestLive => _live.Head;

    /// <summary>How many slots hold a live request.</summary>
    public readonly int LiveCount => _live.Count;

    /// <summary>The slot that finished first of those still kept; -1 when none.</summary>
    public readonly int OldestFinished => _finished.Head;

    /// <summary>A slot's plain values.</summary>
    /// <remarks>On every path of the store, several times a request: the index within a page needs no bounds check (a page holds <see cref="PageSize"/>).</remarks>
    public readonly ref SlotValues this[int slot] => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_values[slot >> PageBits]!), slot & (PageSize - 1));

    /// <summary>What a slot holds by reference.</summary>
    public readonly ref SlotReferences References(int slot) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_references[slot >> PageBits]!), slot & (PageSize - 1));

    /// <summary>A free slot, its generation kept and everything else cleared; the caller has checked that fewer than the capacity are in use.</summary>
    public int Allocate()
    {
        int slot = _free;
        if (slot >= 0)
        {
            _free = this[slot].Next;
        }
        else
        {
            slot = Used++;
            if (_values[slot >> PageBits] is null)
            {
                // The one allocation, a page at a time.
                (_values[slot >> PageBits], _references[slot >> PageBits]) = (new SlotValues[PageSize], new SlotReferences[PageSize]);
            }
        }

        this[slot] = new SlotValues { Generation = this[slot].Generation, Prev = -1, Next = -1, InUse = true };
        return slot;
    }

    /// <summary>Frees a slot that is in neither list: its references are dropped and its generation moves on.</summary>
    public void Free(int slot)
    {
        ref SlotValues values = ref this[slot];
        References(slot) = default;
        (values.InUse, values.Generation, values.Next) = (false, values.Generation + 1, _free);
        _free = slot;
    }

    /// <summary>Adds a slot that holds a live request to the end of that list.</summary>
    public void MarkLive(int slot) => Append(ref _live, slot);

    /// <summary>Takes a slot out of the list of those holding a live request.</summary>
    public void UnmarkLive(int slot) => Unlink(ref _live, slot);

    /// <summary>Adds a slot that finished just now to the end of the finishing order.</summary>
    public void MarkFinished(int slot) => Append(ref _finished, slot);

    /// <summary>Takes a slot out of the finishing order.</summary>
    public void UnmarkFinished(int slot) => Unlink(ref _finished, slot);

    private void Append(ref SlotList list, int slot)
    {
        (this[slot].Prev, this[slot].Next) = (list.Tail, -1);
        if (list.Tail >= 0)
        {
            this[list.Tail].Next = slot;
        }
        else
        {
            list.Head = slot;
        }

        list.Tail = slot;
        list.Count++;
    }

    private void Unlink(ref SlotList list, int slot)
    {
        (int prev, int next) = (this[slot].Prev, this[slot].Next);
        if (prev >= 0)
        {
            this[prev].Next = next;
        }
        else
        {
            list.Head = next;
        }

        if (next >= 0)
        {
            this[next].Prev = prev;
        }
        else
        {
            list.Tail = prev;
        }

        list.Count--;
    }

    /// <summary>A list of slots through their <see cref="SlotValues.Prev"/> and <see cref="SlotValues.Next"/>, oldest first.</summary>
    private struct SlotList
    {
        public static readonly SlotList Empty = new() { Head = -1, Tail = -1 };

        public int Head;
        public int Tail;
        public int Count;
    }
}

/// <summary>One request's plain values in <see cref="RequestSlots"/>; holds no references, so the collector never scans the array.</summary>
internal struct SlotValues
{
    /// <summary>The random bits of an id made by the store; compared on every read by id.</summary>
    public ulong KeyLow;
    public ulong KeyHigh;
    public long SubmittedTicks;
    public long UpdatedTicks;

    /// <summary>Where a finished request's texts lie in the store's arena, when <see cref="InArena"/>.</summary>
    public TextRef Texts;

    /// <summary>Moves on each time the slot is freed.</summary>
    public int Generation;

    /// <summary>The neighbours in the slot's list (live, finished or free); -1 at either end.</summary>
    public int Prev;
    public int Next;
    public AsyncRequestState State;
    public bool InUse;

    /// <summary>The id came from outside (not made by the store): the store's dictionary has it.</summary>
    public bool IsNamed;

    /// <summary>A finished request's texts are in the arena (else still referenced, being long).</summary>
    public bool InArena;

    public readonly bool IsFinished => State is AsyncRequestState.Completed or AsyncRequestState.Failed;
}

/// <summary>What a request in <see cref="RequestSlots"/> holds by reference: an unfinished one's id, content type, payload or live request; a long result's texts.</summary>
internal struct SlotReferences
{
    public string? Id;
    public string? ContentType;
    public ReadOnlyMemory<byte> Payload;
    public LiveRequest? Live;
    public string? Text;
}
