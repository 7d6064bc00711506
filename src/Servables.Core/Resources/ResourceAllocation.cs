using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace Servables;

/// <summary>Amounts of resources (bytes of RAM, of GPU memory): what a loader needs, or what a manager may spend.</summary>
/// <remarks>Immutable: every operation returns a new allocation. Thread-safe.</remarks>
public sealed class ResourceAllocation : IEquatable<ResourceAllocation>
{
    private readonly FrozenDictionary<Resource, long> _quantities;

    private ResourceAllocation(FrozenDictionary<Resource, long> quantities) => _quantities = quantities;

    /// <summary>No resources.</summary>
    public static ResourceAllocation None { get; } = new(FrozenDictionary<Resource, long>.Empty);

    /// <summary>The non-zero quantities, by resource.</summary>
    public IReadOnlyDictionary<Resource, long> Quantities => _quantities;

    /// <summary>True when no resource has a non-zero quantity.</summary>
    public bool IsEmpty => _quantities.Count == 0;

    /// <summary>An allocation of <paramref name="bytes"/> of host memory.</summary>
    public static ResourceAllocation Ram(long bytes) => None.With(Resource.Ram, bytes);

    /// <summary>An allocation of <paramref name="bytes"/> of memory on GPU <paramref name="device"/>.</summary>
    public static ResourceAllocation GpuMemory(long bytes, int device = 0) => None.With(Resource.GpuMemory(device), bytes);

    /// <summary>This allocation with <paramref name="resource"/> set to <paramref name="quantity"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="quantity"/> is negative.</exception>
    public ResourceAllocation With(Resource resource, long quantity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        var copy = new Dictionary<Resource, long>(_quantities);
        if (quantity == 0)
        {
            copy.Remove(resource);
        }
        else
        {
            copy[resource] = quantity;
        }

        return new ResourceAllocation(copy.ToFrozenDictionary());
    }

    /// <summary>The quantity of <paramref name="resource"/>; 0 when absent.</summary>
    public long this[Resource resource] => _quantities.TryGetValue(resource, out long q) ? q : 0;

    /// <summary>The sum of this allocation and <paramref name="other"/>.</summary>
    public ResourceAllocation Add(ResourceAllocation other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.IsEmpty)
        {
            return this;
        }

        var sum = new Dictionary<Resource, long>(_quantities);
        foreach ((Resource r, long q) in other._quantities)
        {
            sum[r] = checked(this[r] + q);
        }

        return new ResourceAllocation(sum.ToFrozenDictionary());
    }

    /// <summary>This allocation less <paramref name="other"/>, floored at zero per resource.</summary>
    public ResourceAllocation Subtract(ResourceAllocation other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.IsEmpty)
        {
            return this;
        }

        var rest = new Dictionary<Resource, long>();
        foreach ((Resource r, long q) in _quantities)
        {
            long left = q - other[r];
            if (left > 0)
            {
                rest[r] = left;
            }
        }

        return new ResourceAllocation(rest.ToFrozenDictionary());
    }

    /// <summary>True when every quantity of this allocation is at most the same quantity in <paramref name="budget"/>.</summary>
    public bool FitsWithin(ResourceAllocation budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        foreach ((Resource r, long q) in _quantities)
        {
            if (q > budget[r])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Per resource, the smaller of this allocation and <paramref name="other"/>.</summary>
    public ResourceAllocation Min(ResourceAllocation other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var min = new Dictionary<Resource, long>();
        foreach ((Resource r, long q) in _quantities)
        {
            long m = Math.Min(q, other[r]);
            if (m > 0)
            {
                min[r] = m;
            }
        }

        return new ResourceAllocation(min.ToFrozenDictionary());
    }

    /// <inheritdoc />
    public bool Equals(ResourceAllocation? other) =>
        other is not null && other._quantities.Count == _quantities.Count && _quantities.All(kv => other[kv.Key] == kv.Value);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as ResourceAllocation);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        int hash = 0;
        foreach ((Resource r, long q) in _quantities)
        {
            hash ^= HashCode.Combine(r, q);
        }

        return hash;
    }

    /// <summary>Lists the quantities, such as <c>main:0/ram=1048576</c>; <c>none</c> when empty.</summary>
    public override string ToString()
    {
        if (IsEmpty)
        {
            return "none";
        }

        var text = new StringBuilder();
        foreach ((Resource r, long q) in _quantities.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append(r.ToString()).Append('=').Append(q.ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }
}
