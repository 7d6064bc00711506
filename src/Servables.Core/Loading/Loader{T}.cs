namespace Servables;

/// <summary>A <see cref="Loader"/> whose servable has the type <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The servable's type.</typeparam>
/// <remarks>
/// Derived classes implement <see cref="CreateAsync"/> (and, when the servable owns more than an
/// <see cref="IDisposable"/>, <see cref="DestroyAsync"/>). The base class keeps the instance,
/// enforces load-once (a load that succeeded cannot run again; one that failed can, which is how the
/// manager retries: each retry runs <see cref="CreateAsync"/> again), and clears the instance before
/// destroying it so that nothing can reach it afterwards.
/// Not thread-safe; the manager serialises calls as the <see cref="Loader"/> contract states.
/// </remarks>
public abstract class Loader<T> : Loader
    where T : class
{
    private T? _value;
    private bool _loaded;

    /// <summary>The loaded servable, typed; null before the load and after unload starts.</summary>
    public T? Value => _value;

    /// <inheritdoc />
    public sealed override object? Servable => _value;

    /// <inheritdoc />
    public sealed override async Task LoadAsync(CancellationToken cancellationToken = default)
    {
        if (_loaded)
        {
            throw new InvalidOperationException($"{TypeNames.Readable(GetType())} was already loaded; a loader loads successfully at most once.");
        }

        // Only a successful load counts: a failed attempt left nothing behind, so a retry starts afresh.
        T value = await CreateAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"{TypeNames.Readable(GetType())}.{nameof(CreateAsync)} returned null; a loader must produce a servable or throw.");
        _value = value;
        _loaded = true;
    }

    /// <inheritdoc />
    public sealed override async Task UnloadAsync(CancellationToken cancellationToken = default)
    {
        T? value = Interlocked.Exchange(ref _value, null);
        if (value is not null)
        {
            await DestroyAsync(value, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Builds the servable; on failure, releases what it acquired and throws.</summary>
    protected abstract Task<T> CreateAsync(CancellationToken cancellationToken);

    /// <summary>Releases the servable. The default disposes it when it is <see cref="IAsyncDisposable"/> or <see cref="IDisposable"/>.</summary>
    protected virtual async Task DestroyAsync(T servable, CancellationToken cancellationToken)
    {
        switch (servable)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }
}
