using System.Collections.Frozen;

namespace Servables;

/// <summary>An immutable snapshot of what is served: per name, the available versions and labels.</summary>
/// <remarks>
/// The manager builds a new map on every load, unload or label change and publishes it with a
/// volatile write; readers resolve requests against whatever map they read, without locks.
/// Immutable and thread-safe.
/// </remarks>
internal sealed class ServingMap
{
    public static readonly ServingMap Empty = new(FrozenDictionary<string, ServingVersions>.Empty);

    /// <summary>Up to this many names are found by comparing them in turn, which costs less than hashing the requested name.</summary>
    private const int ScannedNames = 8;

    private readonly FrozenDictionary<string, ServingVersions> _byName;
    private readonly ServingVersions[]? _scanned;

    private ServingMap(FrozenDictionary<string, ServingVersions> byName)
    {
        _byName = byName;
        _scanned = byName.Count <= ScannedNames ? [.. byName.Values] : null;
        Count = byName.Values.Sum(v => v.Ascending.Length);
    }

    /// <summary>The number of available versions across all names.</summary>
    public int Count { get; }

    public IEnumerable<ServingVersions> Servables => _byName.Values;

    public static ServingMap Create(IEnumerable<ServingVersions> servables)
    {
        FrozenDictionary<string, ServingVersions> byName = servables
            .Where(s => s.Ascending.Length > 0)
            .ToFrozenDictionary(s => s.Name, StringComparer.Ordinal);
        return byName.Count == 0 ? Empty : new ServingMap(byName);
    }

    public bool TryGetVersions(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ServingVersions? versions)
    {
        versions = GetVersions(name);
        return versions is not null;
    }

    /// <summary>The versions served under <paramref name="name"/>, or null.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ServingVersions? GetVersions(string name)
    {
        if (_scanned is { } scanned)
        {
            foreach (ServingVersions candidate in scanned)
            {
                if (ReferenceEquals(candidate.Name, name)) // the same string object, as a literal name usually is
                {
                    return candidate;
                }
            }
        }

        return FindByValue(name);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private ServingVersions? FindByValue(string name)
    {
        if (_scanned is null)
        {
            return _byName.GetValueOrDefault(name);
        }

        foreach (ServingVersions candidate in _scanned)
        {
            if (string.Equals(candidate.Name, name, StringComparison.Ordinal))
            {
                return candidate;
            }
        }

        return null;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public LoadedVersion? Find(ServableRequest request)
    {
        ServingVersions? versions = GetVersions(request.Name);
        if (versions is null)
        {
            return null;
        }

        LoadedVersion[] ascending = versions.Ascending;
        switch (request.Kind)
        {
            case ServableRequestKind.Latest:
                return ascending[^1];
            case ServableRequestKind.Earliest:
                return ascending[0];
            case ServableRequestKind.Specific:
                return versions.FindVersion(request.Version);
            case ServableRequestKind.Labeled:
                return versions.Labels.TryGetValue(request.Label!, out long labeled) ? versions.FindVersion(labeled) : null;
            default:
                return null;
        }
    }
}
