namespace Servables;

/// <summary>Sits between a source and a target and converts each version's data, typically a storage path into a <see cref="Loader"/>.</summary>
/// <typeparam name="TIn">What the upstream source sends, such as a path.</typeparam>
/// <typeparam name="TOut">What the downstream target receives, such as a loader.</typeparam>
/// <remarks>
/// <para>
/// Implementers override <see cref="Convert"/> (cheap: a loader's constructor does no heavy work).
/// A conversion that throws, or an upstream error, reaches the target as that version's error,
/// so that the manager reports it; it never stops the other versions.
/// </para>
/// <para>
/// Aspired sets that arrive before a target is connected are held (the latest per servable) and
/// sent when it is. Thread-safe; sets are forwarded one at a time.
/// </para>
/// </remarks>
public abstract class SourceAdapter<TIn, TOut> : IAspiredVersionsTarget<TIn>, IAspiredVersionsSource<TOut>
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, IReadOnlyList<ServableData<TOut>>> _held = new(StringComparer.Ordinal);
    private IAspiredVersionsTarget<TOut>? _target;

    /// <inheritdoc />
    public void SetAspiredVersionsTarget(IAspiredVersionsTarget<TOut> target)
    {
        ArgumentNullException.ThrowIfNull(target);
        lock (_gate)
        {
            if (_target is not null)
            {
                throw new InvalidOperationException($"{TypeNames.Readable(GetType())} is already connected to a target; an adapter feeds one target.");
            }

            _target = target;
            foreach ((string name, IReadOnlyList<ServableData<TOut>> versions) in _held)
            {
                target.SetAspiredVersions(name, versions);
            }

            _held.Clear();
        }
    }

    /// <inheritdoc />
    public void SetAspiredVersions(string servableName, IReadOnlyList<ServableData<TIn>> versions)
    {
        ArgumentException.ThrowIfNullOrEmpty(servableName);
        ArgumentNullException.ThrowIfNull(versions);
        var adapted = new List<ServableData<TOut>>(versions.Count);
        foreach (ServableData<TIn> item in versions)
        {
            adapted.Add(item.HasValue ? ConvertOne(item.Id, item.Value) : ServableData.FromError<TOut>(item.Id, item.Error!));
        }

        lock (_gate)
        {
            if (_target is null)
            {
                _held[servableName] = adapted;
            }
            else
            {
                _target.SetAspiredVersions(servableName, adapted);
            }
        }
    }

    /// <summary>Converts one version's data; throw to report that version as failed.</summary>
    /// <param name="id">The version.</param>
    /// <param name="data">What the upstream source sent for it.</param>
    protected abstract TOut Convert(ServableId id, TIn data);

    private ServableData<TOut> ConvertOne(ServableId id, TIn data)
    {
        try
        {
            TOut converted = Convert(id, data);
            return converted is null
                ? ServableData.FromError<TOut>(id, new InvalidOperationException($"{TypeNames.Readable(GetType())} converted {id} to null."))
                : ServableData.Create(id, converted);
        }
#pragma warning disable CA1031 // A failed conversion becomes that version's error, reported by the manager.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ServableData.FromError<TOut>(id, ex);
        }
    }
}
