using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Servables;

/// <summary>A version that loaded: the servable plus its lease count.</summary>
/// <remarks>
/// SharedPtrHandle-style counting: the count starts at one, the reference the serving snapshot
/// holds. Handles take leases with <see cref="TryAcquire"/>, which never revives a count that
/// reached zero. To retire the version the manager first publishes a snapshot without it, then
/// drops the snapshot's reference with <see cref="Release"/>; whichever release brings the count
/// to zero starts the unload (asynchronously, on the unload workers). Thread-safe and lock-free.
/// </remarks>
internal sealed class LoadedVersion
{
    private int _leaseCount = 1;

    public LoadedVersion(LoaderHarness harness, object servable)
    {
        Harness = harness;
        Id = harness.Id;
        Servable = servable;
    }

    public ServableId Id { get; }

    public object Servable { get; }

    public LoaderHarness Harness { get; }

    /// <summary>Leases held now, including the snapshot's own reference while the version is served.</summary>
    public int LeaseCount => Volatile.Read(ref _leaseCount);

    public bool TryAcquire()
    {
        int count = Volatile.Read(ref _leaseCount);
        while (count > 0)
        {
            int seen = Interlocked.CompareExchange(ref _leaseCount, count + 1, count);
            if (seen == count)
            {
                return true;
            }

            count = seen;
        }

        return false;
    }

    public void Release()
    {
        int left = Interlocked.Decrement(ref _leaseCount);
        if (left == 0)
        {
            Harness.OnDrained();
        }
        else if (left < 0)
        {
            ThrowReleasedTwice();
        }
    }

    /// <summary>Kept out of line so that the release inlined into every handle dispose stays small.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowReleasedTwice() =>
        throw new InvalidOperationException($"The lease count of {Id} went below zero; a lease was released twice.");
}
