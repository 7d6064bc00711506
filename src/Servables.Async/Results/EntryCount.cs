namespace Servables.Async;

/// <summary>The entry count of a sharded store, against its bound. Thread-safe (atomic).</summary>
internal sealed class EntryCount(int max)
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public bool IsFull => Volatile.Read(ref _count) >= max;

    /// <summary>Takes one place; false (and nothing taken) when the store is at its bound.</summary>
    public bool TryReserve()
    {
        if (Interlocked.Increment(ref _count) <= max)
        {
            return true;
        }

        Interlocked.Decrement(ref _count);
        return false;
    }

    public void Release() => Interlocked.Decrement(ref _count);
}
