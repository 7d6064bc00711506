using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Servables;

/// <summary>A version that loaded: the servable, and the leases held on it.</summary>
/// <remarks>
/// <para>
/// Leases live in a fixed array of slots. A slot's value holds its index, a held bit and a generation
/// that moves on each time the slot is taken. Taking a lease is one compare-and-swap of a free slot
/// to its next generation, held, which is the lease's token; ending it is one compare-and-swap of the
/// token back to free, which is what makes a handle's dispose idempotent across copies and threads:
/// a stale copy's token names a generation the slot has left. Tokens need no thread state (managed
/// thread ids are reused, so they could not be part of one); a slot's 2^56 generations outlast any
/// process. Each thread starts looking at a cache line of its own (8 slots), chosen by where its
/// stack lies, so that threads taking leases on one version do not share a line.
/// When every slot is taken (more than <see cref="SlotCount"/> handles held at once on one version),
/// a lease falls back to an <see cref="OverflowLease"/> object and a shared counter.
/// </para>
/// <para>
/// Retirement (SharedPtrHandle-style, never reviving): the manager first publishes a serving snapshot
/// without the version, then calls <see cref="Retire"/>. A new lease checks the retired flag after
/// taking its slot and backs off if set; an ended lease checks it after freeing its slot. Both sides
/// fence between their write and their read, so whichever sees the version retired with no lease
/// left calls <see cref="LoaderHarness.OnDrained"/> — exactly once — and the unload starts,
/// asynchronously, on the unload workers.
/// </para>
/// <para>Thread-safe and lock-free.</para>
/// </remarks>
internal sealed class LoadedVersion : UntypedServableHandle
{
    public const int SlotCount = 128;
    private const long SlotMask = SlotCount - 1;

    // A slot's value: generation << GenerationShift | index << 1 | held.
    private const int GenerationShift = 8;
    private const long Held = 1;
    private const long NextGenerationHeld = (1L << GenerationShift) + Held;

    /// <summary><see cref="TryAcquireSlot"/>: the version was retired, no lease taken.</summary>
    public const long Retired = 0;

    /// <summary><see cref="TryAcquireSlot"/>: every slot is held, no lease taken.</summary>
    public const long SlotsFull = 2;

    private readonly long[] _slots = NewSlots();
    private int _overflow;
    private int _retired;
    private int _drained;

    public LoadedVersion(LoaderHarness harness, object servable)
    {
        Harness = harness;
        Id = harness.Id;
        Servable = servable;
    }

    public override ServableId Id { get; }

    public override object Servable { get; }

    public LoaderHarness Harness { get; }

    /// <summary>Leases held now (a diagnostic: it may change while counted).</summary>
    public int LeaseCount
    {
        get
        {
            int held = Volatile.Read(ref _overflow);
            foreach (long slot in _slots)
            {
                held += (int)(slot & Held);
            }

            return held;
        }
    }

    /// <summary>Takes a lease unless the version was retired.</summary>
    /// <param name="lease">What the handle holds: this version, or an overflow lease.</param>
    /// <param name="token">The lease's token.</param>
    public bool TryAcquire(out UntypedServableHandle lease, out long token)
    {
        token = TryAcquireSlot();
        if (IsSlotLease(token))
        {
            lease = this;
            return true;
        }

        if (token == Retired)
        {
            lease = null!;
            return false;
        }

        return TryAcquireOverflow(out lease, out token);
    }

    /// <summary>
    /// The handle path's half of <see cref="TryAcquire"/>: the token of a lease in a slot (see <see cref="IsSlotLease"/>),
    /// whose lease is this version; <see cref="Retired"/> when the version was retired; <see cref="SlotsFull"/> when every
    /// slot is held, and the caller then takes an overflow lease (<see cref="TryAcquireOverflow"/>). No out parameters,
    /// so the caller keeps it in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long TryAcquireSlot()
    {
        int start = ThreadLine();
        ref long slots = ref MemoryMarshal.GetArrayDataReference(_slots); // SlotCount longs; every index below is masked to it
        for (int i = 0; i < SlotCount; i++)
        {
            ref long cell = ref Unsafe.Add(ref slots, (start + i) & (int)SlotMask);
            long free = Volatile.Read(ref cell);
            if ((free & Held) == 0 && Interlocked.CompareExchange(ref cell, free + NextGenerationHeld, free) == free)
            {
                if (Volatile.Read(ref _retired) != 0)
                {
                    Volatile.Write(ref cell, free + NextGenerationHeld - Held);
                    CheckDrained();
                    return Retired;
                }

                return free + NextGenerationHeld;
            }
        }

        return SlotsFull;
    }

    /// <summary>Whether <paramref name="token"/>, from <see cref="TryAcquireSlot"/>, is a lease (its held bit is set, which neither <see cref="Retired"/> nor <see cref="SlotsFull"/> has).</summary>
    public static bool IsSlotLease(long token) => (token & Held) != 0;

    /// <summary>Takes the version out of service; it drains once its last lease ends.</summary>
    public void Retire()
    {
        Volatile.Write(ref _retired, 1);
        Interlocked.MemoryBarrier();
        CheckDrained();
    }

    protected internal override bool IsLeaseHeld(long leaseToken) =>
        (leaseToken & Held) != 0 && Volatile.Read(ref Slot(leaseToken)) == leaseToken;

    protected internal override bool TryEndLease(long leaseToken) => EndLease(leaseToken);

    /// <inheritdoc cref="TryEndLease"/>
    [MethodImpl(MethodImplOptions.NoInlining)] // out of line, so that a handle's Dispose in the finally block of a using stays small enough for the JIT to copy onto the normal path
    internal bool EndLease(long leaseToken)
    {
        if ((leaseToken & Held) == 0 || Interlocked.CompareExchange(ref Slot(leaseToken), leaseToken - Held, leaseToken) != leaseToken)
        {
            return false;
        }

        if (Volatile.Read(ref _retired) != 0)
        {
            CheckDrained();
        }

        return true;
    }

    /// <summary>The slot a token names (its index bits, masked to <see cref="SlotCount"/>, so never out of range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref long Slot(long leaseToken) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_slots), (nint)((leaseToken >> 1) & SlotMask));

    /// <summary>The first slot of the calling thread's cache line: from the megabyte its stack lies in, so that it costs no thread-local read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ThreadLine()
    {
        byte here = 0;
        nint address = Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref here);
        return (int)(address >> 20) * 8;
    }

    private static long[] NewSlots()
    {
        var slots = new long[SlotCount];
        for (int i = 0; i < SlotCount; i++)
        {
            slots[i] = (long)i << 1; // free, generation 0
        }

        return slots;
    }

    /// <summary>A lease past the slots (an object of its own); false when the version was retired.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal bool TryAcquireOverflow(out UntypedServableHandle lease, out long token)
    {
        token = 1;
        lease = null!;
        if (Volatile.Read(ref _retired) != 0)
        {
            return false;
        }

        Interlocked.Increment(ref _overflow);
        if (Volatile.Read(ref _retired) != 0)
        {
            ReleaseOverflow();
            return false;
        }

        lease = new OverflowLease(this);
        return true;
    }

    private void ReleaseOverflow()
    {
        Interlocked.Decrement(ref _overflow);
        if (Volatile.Read(ref _retired) != 0)
        {
            CheckDrained();
        }
    }

    /// <summary>Calls OnDrained once the version is retired and no lease is left.</summary>
    private void CheckDrained()
    {
        if (Volatile.Read(ref _overflow) != 0)
        {
            return;
        }

        for (int i = 0; i < SlotCount; i++)
        {
            if ((Volatile.Read(ref _slots[i]) & Held) != 0)
            {
                return;
            }
        }

        if (Interlocked.Exchange(ref _drained, 1) == 0)
        {
            Harness.OnDrained();
        }
    }

    /// <summary>A lease taken when every slot was busy: allocated, counted in the shared overflow counter.</summary>
    private sealed class OverflowLease(LoadedVersion version) : UntypedServableHandle
    {
        private int _ended;

        public override ServableId Id => version.Id;

        public override object Servable => version.Servable;

        protected internal override bool IsLeaseHeld(long leaseToken) => Volatile.Read(ref _ended) == 0;

        protected internal override bool TryEndLease(long leaseToken)
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0)
            {
                return false;
            }

            version.ReleaseOverflow();
            return true;
        }
    }
}
