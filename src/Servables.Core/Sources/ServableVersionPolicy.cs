namespace Servables;

/// <summary>Which of the versions found in storage a source aspires.</summary>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed class ServableVersionPolicy
{
    private readonly long[] _specific;

    private ServableVersionPolicy(ServableVersionPolicyKind kind, int count, long[] specific)
    {
        Kind = kind;
        Count = count;
        _specific = specific;
    }

    /// <summary>Every version found.</summary>
    public static ServableVersionPolicy All { get; } = new(ServableVersionPolicyKind.All, 0, []);

    /// <summary>What the policy selects.</summary>
    public ServableVersionPolicyKind Kind { get; }

    /// <summary>For <see cref="ServableVersionPolicyKind.Latest"/>: how many of the newest versions.</summary>
    public int Count { get; }

    /// <summary>For <see cref="ServableVersionPolicyKind.Specific"/>: the versions, ascending.</summary>
    public IReadOnlyList<long> Versions => _specific;

    /// <summary>The <paramref name="count"/> newest versions found (the default policy is <c>Latest(1)</c>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    public static ServableVersionPolicy Latest(int count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        return new ServableVersionPolicy(ServableVersionPolicyKind.Latest, count, []);
    }

    /// <summary>Exactly these versions, when found.</summary>
    /// <exception cref="ArgumentException">No version given, or a negative one.</exception>
    public static ServableVersionPolicy Specific(params IEnumerable<long> versions)
    {
        ArgumentNullException.ThrowIfNull(versions);
        long[] sorted = [.. versions.Distinct().Order()];
        if (sorted.Length == 0 || sorted[0] < 0)
        {
            throw new ArgumentException("Give at least one version, and no negative ones.", nameof(versions));
        }

        return new ServableVersionPolicy(ServableVersionPolicyKind.Specific, 0, sorted);
    }

    /// <summary>Picks from <paramref name="found"/> (ascending) the versions to aspire, ascending.</summary>
    internal IReadOnlyList<long> Select(IReadOnlyList<long> found) => Kind switch
    {
        ServableVersionPolicyKind.All => found,
        ServableVersionPolicyKind.Latest => found.Skip(Math.Max(0, found.Count - Count)).ToArray(),
        _ => found.Where(v => Array.BinarySearch(_specific, v) >= 0).ToArray(),
    };

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        ServableVersionPolicyKind.All => "all",
        ServableVersionPolicyKind.Latest => $"latest {Count}",
        _ => $"specific {string.Join(", ", _specific)}",
    };
}
