namespace Servables;

/// <summary>A loader built from delegates: a factory that creates the servable and an optional destroyer.</summary>
/// <typeparam name="T">The servable's type.</typeparam>
/// <remarks>
/// Convenient for tests and for servables without a dedicated loader. Without a destroyer the
/// servable is disposed if it is disposable. Same thread-safety as <see cref="Loader{T}"/>.
/// </remarks>
public sealed class SimpleLoader<T> : Loader<T>
    where T : class
{
    private readonly Func<CancellationToken, Task<T>> _factory;
    private readonly Func<T, Task>? _destroy;
    private readonly ResourceAllocation _estimate;

    /// <summary>Creates a loader that runs <paramref name="factory"/> on load.</summary>
    /// <param name="factory">Creates the servable; may throw to fail the load.</param>
    /// <param name="destroy">Releases the servable on unload; null to dispose it if disposable.</param>
    /// <param name="estimate">The resources the servable needs at most; null for none.</param>
    public SimpleLoader(Func<CancellationToken, Task<T>> factory, Func<T, Task>? destroy = null, ResourceAllocation? estimate = null)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _factory = factory;
        _destroy = destroy;
        _estimate = estimate ?? ResourceAllocation.None;
    }

    /// <summary>Creates a loader from a synchronous factory.</summary>
    /// <param name="factory">Creates the servable; may throw to fail the load.</param>
    /// <param name="estimate">The resources the servable needs at most; null for none.</param>
    public SimpleLoader(Func<T> factory, ResourceAllocation? estimate = null)
        : this(WrapFactory(factory), null, estimate)
    {
    }

    /// <inheritdoc />
    public override ResourceAllocation EstimateResources() => _estimate;

    /// <inheritdoc />
    protected override Task<T> CreateAsync(CancellationToken cancellationToken) => _factory(cancellationToken);

    /// <inheritdoc />
    protected override Task DestroyAsync(T servable, CancellationToken cancellationToken) =>
        _destroy is null ? base.DestroyAsync(servable, cancellationToken) : _destroy(servable);

    private static Func<CancellationToken, Task<T>> WrapFactory(Func<T> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return _ => Task.FromResult(factory());
    }
}
