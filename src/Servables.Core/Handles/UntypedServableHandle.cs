namespace Servables;

/// <summary>
/// A lease on one loaded servable version, as a manager hands it out; the untyped base that
/// <see cref="ServableHandle{T}"/> wraps.
/// </summary>
/// <remarks>
/// <para>
/// Contract: while a lease is held, the version it names stays loaded and <see cref="Servable"/>
/// stays valid. The lease ends exactly once, through <see cref="ServableHandle{T}.Dispose"/>;
/// the framework then calls <see cref="OnLeaseEnded"/>, and from that moment the object may be
/// reused (pooled) for another lease. Each lease has its own <see cref="LeaseToken"/>, so a stale
/// copy of a typed handle can tell that its lease is over.
/// </para>
/// <para>
/// Implementers (custom managers) return the same <see cref="Id"/> and <see cref="Servable"/>
/// for the whole lease and release whatever keeps the version loaded in <see cref="OnLeaseEnded"/>.
/// </para>
/// <para>Ending a lease is thread-safe; reading a lease's members after it ended is not supported.</para>
/// </remarks>
public abstract class UntypedServableHandle
{
    private long _leaseToken;

    /// <summary>The servable version this lease keeps loaded.</summary>
    public abstract ServableId Id { get; }

    /// <summary>The loaded servable; valid only while the lease is held.</summary>
    public abstract object Servable { get; }

    /// <summary>Identifies the current lease of this object; it changes when the lease ends.</summary>
    public long LeaseToken => Volatile.Read(ref _leaseToken);

    /// <summary>Ends the lease identified by <paramref name="leaseToken"/>, once.</summary>
    /// <returns>True if this call ended the lease; false if it had already ended.</returns>
    internal bool TryEndLease(long leaseToken)
    {
        if (Interlocked.CompareExchange(ref _leaseToken, leaseToken + 1, leaseToken) != leaseToken)
        {
            return false;
        }

        OnLeaseEnded();
        return true;
    }

    /// <summary>
    /// Called exactly once per lease, when its handle is disposed: release what keeps the version
    /// loaded. Must not throw and must not block.
    /// </summary>
    protected abstract void OnLeaseEnded();
}
