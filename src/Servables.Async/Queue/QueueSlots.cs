using System.Runtime.InteropServices;

namespace Servables.Async;

/// <summary>Counts the requests waiting in an API's queue against its capacity.</summary>
/// <remarks>
/// Submitters take slots and lanes give them back, usually on different cores. Each side counts on
/// its own cache line, and a submitter reads the lanes' count only when the queue looks full by its
/// last reading of it (which can only be too low), so a submit and a dequeue touch no line in common.
/// Thread-safe.
/// </remarks>
internal sealed class QueueSlots(int capacity)
{
    private Counters _counters;

    // Recovery, waiting for a lane to give a slot back (one waiter at a time); null when nobody waits.
    private volatile TaskCompletionSource? _roomWaiter;

    /// <summary>How many slots are taken now.</summary>
    public int Depth => (int)Math.Max(0, Volatile.Read(ref _counters.Taken) - Volatile.Read(ref _counters.Returned));

    /// <summary>Takes a slot; false when all <c>capacity</c> are taken.</summary>
    public bool TryTake()
    {
        long taken = Interlocked.Increment(ref _counters.Taken);
        if (taken - Volatile.Read(ref _counters.ReturnedSeen) <= capacity)
        {
            return true;
        }

        long returned = Volatile.Read(ref _counters.Returned);
        Volatile.Write(ref _counters.ReturnedSeen, returned); // racing submitters may write an older reading: that only reads again sooner
        if (taken - returned <= capacity)
        {
            return true;
        }

        Interlocked.Decrement(ref _counters.Taken);
        return false;
    }

    /// <summary>Gives back a slot a submit took and did not use.</summary>
    public void Untake() => Interlocked.Decrement(ref _counters.Taken);

    /// <summary>Gives back a slot: a lane took its request off the queue.</summary>
    public void Return()
    {
        Interlocked.Increment(ref _counters.Returned);
        if (_roomWaiter is not null)
        {
            Interlocked.Exchange(ref _roomWaiter, null)?.TrySetResult();
        }
    }

    /// <summary>Takes a slot, waiting while all are taken until a lane gives one back; for one caller at a time (recovery).</summary>
    public async ValueTask TakeAsync(CancellationToken cancellationToken)
    {
        while (!TryTake())
        {
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _roomWaiter = waiter;
            if (TryTake())
            {
                Interlocked.CompareExchange(ref _roomWaiter, null, waiter);
                return;
            }

            await waiter.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The submitters' line and the lanes' line, a line apart.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct Counters
    {
        [FieldOffset(64)]
        public long Taken;

        /// <summary>The last reading of <see cref="Returned"/> by a submitter.</summary>
        [FieldOffset(72)]
        public long ReturnedSeen;

        [FieldOffset(192)]
        public long Returned;
    }
}
