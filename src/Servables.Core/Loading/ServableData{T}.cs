namespace Servables;

/// <summary>One version's data as a source reports it: a value (a path, a loader) or the error that prevented it.</summary>
/// <typeparam name="T">What the source produces, such as a storage path or a <see cref="Loader"/>.</typeparam>
/// <remarks>Create with <see cref="ServableData.Create{T}(ServableId, T)"/> or <see cref="ServableData.FromError{T}(ServableId, Exception)"/>. Immutable.</remarks>
public readonly struct ServableData<T>
{
    internal ServableData(ServableId id, T? value, Exception? error)
    {
        Id = id;
        _value = value;
        Error = error;
    }

    private readonly T? _value;

    /// <summary>The version this data belongs to.</summary>
    public ServableId Id { get; }

    /// <summary>The error that prevented the source from producing the value; null when there is a value.</summary>
    public Exception? Error { get; }

    /// <summary>True when there is a value (no error).</summary>
    public bool HasValue => Error is null;

    /// <summary>The value.</summary>
    /// <exception cref="InvalidOperationException">The data carries an error; the message and inner exception say which.</exception>
    public T Value => Error is null ? _value! : throw new InvalidOperationException($"Servable {Id} has no data: {Error.Message}", Error);

    /// <inheritdoc />
    public override string ToString() => Error is null ? $"{Id}: {_value}" : $"{Id}: error: {Error.Message}";
}
