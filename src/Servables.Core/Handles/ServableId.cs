namespace Servables;

/// <summary>Identifies one version of a named servable, such as version 3 of model "resnet".</summary>
/// <remarks>
/// Names compare ordinally (case-sensitive); versions are non-negative. The default value has an
/// empty name and version 0 and names no real servable. This type is immutable and thread-safe.
/// </remarks>
public readonly struct ServableId : IEquatable<ServableId>, IComparable<ServableId>
{
    private readonly string? _name;

    /// <summary>Creates an id for <paramref name="version"/> of the servable called <paramref name="name"/>.</summary>
    /// <param name="name">The servable's name; not null or empty.</param>
    /// <param name="version">The version number; zero or more.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="version"/> is negative.</exception>
    public ServableId(string name, long version)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        _name = name;
        Version = version;
    }

    /// <summary>The servable's name, shared by all of its versions.</summary>
    public string Name => _name ?? string.Empty;

    /// <summary>The version number; larger numbers are newer.</summary>
    public long Version { get; }

    /// <inheritdoc />
    public bool Equals(ServableId other) => Version == other.Version && string.Equals(Name, other.Name, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ServableId other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(StringComparer.Ordinal.GetHashCode(Name), Version);

    /// <summary>Orders ids by name (ordinal), then by version.</summary>
    public int CompareTo(ServableId other)
    {
        int byName = string.CompareOrdinal(Name, other.Name);
        return byName != 0 ? byName : Version.CompareTo(other.Version);
    }

    /// <summary>Returns <c>name:version</c>, the form used in logs and error messages.</summary>
    public override string ToString() => $"{Name}:{Version}";

    /// <summary>Compares two ids for equality.</summary>
    public static bool operator ==(ServableId left, ServableId right) => left.Equals(right);

    /// <summary>Compares two ids for inequality.</summary>
    public static bool operator !=(ServableId left, ServableId right) => !left.Equals(right);

    /// <summary>True when <paramref name="left"/> sorts before <paramref name="right"/>.</summary>
    public static bool operator <(ServableId left, ServableId right) => left.CompareTo(right) < 0;

    /// <summary>True when <paramref name="left"/> sorts after <paramref name="right"/>.</summary>
    public static bool operator >(ServableId left, ServableId right) => left.CompareTo(right) > 0;

    /// <summary>True when <paramref name="left"/> sorts before or equal to <paramref name="right"/>.</summary>
    public static bool operator <=(ServableId left, ServableId right) => left.CompareTo(right) <= 0;

    /// <summary>True when <paramref name="left"/> sorts after or equal to <paramref name="right"/>.</summary>
    public static bool operator >=(ServableId left, ServableId right) => left.CompareTo(right) >= 0;
}
