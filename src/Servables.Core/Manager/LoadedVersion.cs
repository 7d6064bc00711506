using System.Runtime.CompilerServices;

namespace Servables;

/// <summary>A version that loaded: the servable, and the leases held on it.</summary>
/// <remarks>
/// <para>
/// Leases live in a fixed array of slots, each free (0) or holding the token of one lease. Taking a
/// lease is one compare-and-swap of a free slot to a new token; ending it is one compare-and-swap of
/// the token back to 0, which is what makes a handle's dispose idempotent across copies and threads:
/// a stale copy's token no longer matches. Tokens are never issued twice in a process, whatever the
/// thread history (managed thread ids are reused, so they cannot be part of a token): each thread
/// takes a block of 65,535 tokens from a shared counter (one interlocked add per block) and counts
/// through it; the block number is in the high bits, the sequence within the block below, the slot
/// index in the low bits. 2^40 blocks last a process 2^56 leases.
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

    private const int SequenceShift = 7; // log2(SlotCount)
    private const int BlockShift = SequenceShift + 16;
    private const long SequenceMask = ((1L << 16) - 1) << SequenceShift;

    [ThreadStatic]
    private static long t_nextToken;

    private static long s_lastBlock;

    private readonly long[] _slots = new long[SlotCount];
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
                held += slot != 0 ? 1 : 0;
            }

            return held;
        }
    }

    /// <summary>Takes a lease unless the version was retired.</summary>
    /// <param name="lease">What the handle holds: this version, or an overflow lease.</param>
    /// <param name="token">The lease's token.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryAcquire(out UntypedServableHandle lease, out long token)
    {
        long unique = NextUnique();
        int start = (int)(unique >> BlockShift) * 8; // a cache line (8 slots) per token block (one block per thread at a time), so threads do not share one
        for (int i = 0; i < SlotCount; i++)
        {
            int slot = (int)((start + i) & SlotMask);
            long candidate = unique | (uint)slot;
            if (Volatile.Read(ref _slots[slot]) == 0 && Interlocked.CompareExchange(ref _slots[slot], candidate, 0) == 0)
            {
                if (Volatile.Read(ref _retired) != 0)
                {
                    Volatile.Write(ref _slots[slot], 0);
                    CheckDrained();
                    break;
                }

                lease = this;
                token = candidate;
                return true;
            }
        }

        return TryAcquireOverflow(out lease, out token);
    }

    /// <summary>Takes the version out of service; it drains once its last lease ends.</summary>
    public void Retire()
    {
        Volatile.Write(ref _retired, 1);
        Interlocked.MemoryBarrier();
        CheckDrained();
    }

    protected internal override bool IsLeaseHeld(long leaseToken) =>
        leaseToken != 0 && Volatile.Read(ref _slots[leaseToken & SlotMask]) == leaseToken;

    protected internal override bool TryEndLease(long leaseToken)
    {
        if (leaseToken == 0 || Interlocked.CompareExchange(ref _slots[leaseToken & SlotMask], 0, leaseToken) != leaseToken)
        {
            return false;
        }

        if (Volatile.Read(ref _retired) != 0)
        {
            CheckDrained();
        }

        return true;
    }

    /// <summary>A token with free slot bits that no other lease in this process ever had.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long NextUnique()
    {
        long next = t_nextToken;
        if ((next & SequenceMask) == 0)
        {
            // A new thread, or the thread's block is used up (the sequence wrapped into the block bits).
            next = NextBlock();
        }

        t_nextToken = next + SlotCount;
        return next;
    }

    /// <summary>The first token of a block no thread has had: sequence 1 (0 marks "take a new block"), block numbers from 1.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long NextBlock() => (Interlocked.Increment(ref s_lastBlock) << BlockShift) | (1L << SequenceShift);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryAcquireOverflow(out UntypedServableHandle lease, out long token)
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
            if (Volatile.Read(ref _slots[i]) != 0)
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
