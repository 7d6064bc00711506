namespace Servables;

/// <summary>
/// What keeps one loaded servable version alive while handles on it are held: the untyped side of
/// <see cref="ServableHandle{T}"/>, implemented by managers.
/// </summary>
/// <remarks>
/// <para>
/// Contract: a manager hands out a lease as this object plus a <c>long</c> lease token. While the
/// lease is held, the version stays loaded and <see cref="Servable"/> stays valid.
/// <see cref="TryEndLease"/> ends the lease exactly once, however many times and from however many
/// threads it is called with that token; <see cref="IsLeaseHeld"/> tells whether it still holds.
/// One object may carry many leases at once, each with its own token, and must never give a token
/// that is still in use to another lease.
/// </para>
/// <para>
/// Implementers (custom managers) return the same <see cref="Id"/> and <see cref="Servable"/> for the
/// object's whole life and make both lease members thread-safe, non-blocking and allocation-free.
/// </para>
/// <para>All members are thread-safe.</para>
/// </remarks>
public abstract class UntypedServableHandle
{
    /// <summary>The servable version the leases keep loaded.</summary>
    public abstract ServableId Id { get; }

    /// <summary>The loaded servable; valid only while a lease is held.</summary>
    public abstract object Servable { get; }

    /// <summary>True while the lease identified by <paramref name="leaseToken"/> is held.</summary>
    protected internal abstract bool IsLeaseHeld(long leaseToken);

    /// <summary>Ends the lease identified by <paramref name="leaseToken"/>, once; must not throw or block.</summary>
    /// <returns>True if this call ended the lease; false if it had already ended.</returns>
    protected internal abstract bool TryEndLease(long leaseToken);
}
