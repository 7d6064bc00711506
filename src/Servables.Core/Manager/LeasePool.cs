using System.Runtime.CompilerServices;

namespace Servables;

/// <summary>Recycles <see cref="ServableLease"/> objects so that acquiring a handle allocates nothing in steady state.</summary>
/// <remarks>
/// A one-item cache per thread serves the common acquire-use-dispose pattern; a small shared
/// array, swapped with interlocked operations, catches leases released on another thread.
/// When both are empty a new lease is allocated; when both are full a returned lease is left to
/// the GC. Thread-safe and lock-free.
/// </remarks>
internal static class LeasePool
{
    [ThreadStatic]
    private static ServableLease? t_cached;

    private static readonly ServableLease?[] s_shared = new ServableLease?[Math.Clamp(Environment.ProcessorCount * 4, 8, 64)];

    // The thread cache is the hot path: inlined into the handle acquire and dispose; the shared array stays out of line.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ServableLease Rent()
    {
        ServableLease? lease = t_cached;
        if (lease is not null)
        {
            t_cached = null;
            return lease;
        }

        return RentShared();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Return(ServableLease lease)
    {
        if (t_cached is null)
        {
            t_cached = lease;
            return;
        }

        ReturnShared(lease);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ServableLease RentShared()
    {
        ServableLease?[] shared = s_shared;
        for (int i = 0; i < shared.Length; i++)
        {
            ServableLease? lease = Volatile.Read(ref shared[i]);
            if (lease is not null && Interlocked.CompareExchange(ref shared[i], null, lease) == lease)
            {
                return lease;
            }
        }

        return new ServableLease();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ReturnShared(ServableLease lease)
    {
        ServableLease?[] shared = s_shared;
        for (int i = 0; i < shared.Length; i++)
        {
            if (Volatile.Read(ref shared[i]) is null && Interlocked.CompareExchange(ref shared[i], lease, null) is null)
            {
                return;
            }
        }
    }
}
