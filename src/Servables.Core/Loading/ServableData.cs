namespace Servables;

/// <summary>Creates <see cref="ServableData{T}"/> values.</summary>
public static class ServableData
{
    /// <summary>Data for <paramref name="id"/> that carries <paramref name="value"/>.</summary>
    public static ServableData<T> Create<T>(ServableId id, T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new ServableData<T>(id, value, null);
    }

    /// <summary>Data for <paramref name="id"/> that carries the error that prevented a value.</summary>
    public static ServableData<T> FromError<T>(ServableId id, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new ServableData<T>(id, default, error);
    }
}
