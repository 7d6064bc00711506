namespace Servables;

/// <summary>A typed lease on one loaded servable version: holding it keeps that version loaded.</summary>
/// <typeparam name="T">The servable's type (or a base type or interface it implements).</typeparam>
/// <remarks>
/// <para>
/// Obtained from <see cref="IServableManager.GetServableHandle{T}(ServableRequest)"/> and its
/// siblings. The caller owns the handle and disposes it, promptly: a version is unloaded only
/// after its last handle is released. <see cref="Dispose"/> is idempotent, also across copies of
/// the struct: the first dispose of any copy ends the lease, and every copy then reports
/// <see cref="HasValue"/> false and throws on <see cref="Value"/>.
/// </para>
/// <para>
/// Two handles are equal when they lease the same servable object under the same
/// <see cref="ServableId"/>. A handle is a struct so that acquiring one allocates nothing.
/// </para>
/// <para>Reading a handle from several threads is safe; disposing it while another thread reads it is not.</para>
/// </remarks>
public readonly struct ServableHandle<T> : IDisposable, IEquatable<ServableHandle<T>>
    where T : class
{
    private readonly UntypedServableHandle? _lease;
    private readonly T? _value;
    private readonly long _token;

    /// <summary>Wraps a lease; for custom managers.</summary>
    /// <param name="lease">The object that carries the lease.</param>
    /// <param name="leaseToken">The token of a held lease; the new handle takes it over and ends it on dispose.</param>
    /// <exception cref="InvalidCastException">The servable is not a <typeparamref name="T"/>; the lease is left to the caller to end.</exception>
    public ServableHandle(UntypedServableHandle lease, long leaseToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        object servable = lease.Servable;
        _value = servable as T ?? throw TypeMismatch(lease.Id, servable);
        _lease = lease;
        _token = leaseToken;
    }

    internal ServableHandle(UntypedServableHandle lease, T value, long token)
    {
        _lease = lease;
        _value = value;
        _token = token;
    }

    /// <summary>The version this handle leases; still readable after dispose.</summary>
    public ServableId Id => _lease is null ? default : _lease.Id;

    /// <summary>Whether this is the default (empty) handle, which never held a lease.</summary>
    internal bool IsEmpty => _lease is null;

    /// <summary>True while the lease is held (not default, not disposed).</summary>
    public bool HasValue => _lease is not null && _lease.IsLeaseHeld(_token);

    /// <summary>The servable.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is empty (default).</exception>
    public T Value
    {
        get
        {
            if (_lease is null)
            {
                ThrowEmpty();
            }

            if (!_lease.IsLeaseHeld(_token))
            {
                ThrowDisposed(_lease.Id);
            }

            return _value!;
        }
    }

    /// <summary>Returns <see cref="Value"/>; the same checks apply.</summary>
    public T Get() => Value;

    /// <summary>Ends the lease; the version may unload once its last lease has ended. Idempotent.</summary>
    public void Dispose()
    {
        if (_lease is LoadedVersion version)
        {
            version.EndLease(_token); // the manager's own lease, called directly: a dispose in a finally block gets no guessed devirtualisation
        }
        else
        {
            _lease?.TryEndLease(_token);
        }
    }

    /// <inheritdoc />
    public bool Equals(ServableHandle<T> other) => ReferenceEquals(_value, other._value) && Id == other.Id;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ServableHandle<T> other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Id, _value is null ? 0 : System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(_value));

    /// <inheritdoc />
    public override string ToString() => _lease is null ? "(empty handle)" : $"handle on {Id}{(HasValue ? string.Empty : " (disposed)")}";

    /// <summary>Compares two handles for equality.</summary>
    public static bool operator ==(ServableHandle<T> left, ServableHandle<T> right) => left.Equals(right);

    /// <summary>Compares two handles for inequality.</summary>
    public static bool operator !=(ServableHandle<T> left, ServableHandle<T> right) => !left.Equals(right);

    internal static InvalidCastException TypeMismatch(ServableId id, object servable) =>
        new($"Servable {id} is a '{TypeNames.Qualified(servable.GetType())}', which is not a '{TypeNames.Qualified(typeof(T))}'. Request the servable with a type it is or implements.");

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowEmpty() =>
        throw new InvalidOperationException("This servable handle is empty: it was never assigned a lease (default value).");

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowDisposed(ServableId id) =>
        throw new ObjectDisposedException(nameof(ServableHandle<T>), $"The handle on {id} was disposed; acquire a new handle from the manager.");
}
