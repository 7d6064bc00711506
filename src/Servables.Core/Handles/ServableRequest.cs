namespace Servables;

/// <summary>Names the servable a caller wants and how to pick its version.</summary>
/// <remarks>
/// Requests are resolved against the versions that are available at the moment of the call:
/// <see cref="Latest(string)"/> moves to a new version as soon as it becomes available.
/// This type is immutable and thread-safe.
/// </remarks>
public readonly struct ServableRequest : IEquatable<ServableRequest>
{
    private readonly string? _name;

    internal ServableRequest(string name, ServableRequestKind kind, long version, string? label)
    {
        _name = name;
        Kind = kind;
        Version = version;
        Label = label;
    }

    /// <summary>The servable's name.</summary>
    public string Name => _name ?? string.Empty;

    /// <summary>How the version is picked.</summary>
    public ServableRequestKind Kind { get; }

    /// <summary>The version number for <see cref="ServableRequestKind.Specific"/>; otherwise 0.</summary>
    public long Version { get; }

    /// <summary>The label for <see cref="ServableRequestKind.Labeled"/>; otherwise null.</summary>
    public string? Label { get; }

    /// <summary>Requests the newest available version of <paramref name="name"/>.</summary>
    public static ServableRequest Latest(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new ServableRequest(name, ServableRequestKind.Latest, 0, null);
    }

    /// <summary>Requests the oldest available version of <paramref name="name"/>.</summary>
    public static ServableRequest Earliest(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new ServableRequest(name, ServableRequestKind.Earliest, 0, null);
    }

    /// <summary>Requests exactly <paramref name="version"/> of <paramref name="name"/>.</summary>
    public static ServableRequest Specific(string name, long version)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        return new ServableRequest(name, ServableRequestKind.Specific, version, null);
    }

    /// <summary>Requests the version of <paramref name="name"/> that <paramref name="label"/> points to.</summary>
    public static ServableRequest Labeled(string name, string label)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(label);
        return new ServableRequest(name, ServableRequestKind.Labeled, 0, label);
    }

    /// <summary>Requests exactly the version <paramref name="id"/> names.</summary>
    public static ServableRequest FromId(ServableId id) => Specific(id.Name, id.Version);

    /// <inheritdoc />
    public bool Equals(ServableRequest other) =>
        Kind == other.Kind && Version == other.Version
        && string.Equals(Name, other.Name, StringComparison.Ordinal)
        && string.Equals(Label, other.Label, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ServableRequest other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(StringComparer.Ordinal.GetHashCode(Name), Kind, Version, Label is null ? 0 : StringComparer.Ordinal.GetHashCode(Label));

    /// <summary>Describes the request, for example <c>resnet (latest)</c> or <c>resnet:3</c>.</summary>
    public override string ToString() => Kind switch
    {
        ServableRequestKind.Specific => $"{Name}:{Version}",
        ServableRequestKind.Labeled => $"{Name} (label '{Label}')",
        ServableRequestKind.Earliest => $"{Name} (earliest)",
        _ => $"{Name} (latest)",
    };

    /// <summary>Compares two requests for equality.</summary>
    public static bool operator ==(ServableRequest left, ServableRequest right) => left.Equals(right);

    /// <summary>Compares two requests for inequality.</summary>
    public static bool operator !=(ServableRequest left, ServableRequest right) => !left.Equals(right);
}
