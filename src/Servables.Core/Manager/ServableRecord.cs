namespace Servables;

/// <summary>What the manager knows of one servable name: its harnesses, labels, and the aspired set not yet applied.</summary>
/// <remarks>
/// Created when a source first aspires versions of the name; removed once it has no harness, no
/// pending set and no label. <see cref="Harnesses"/> is ascending by version with no version twice.
/// Not thread-safe: read and written under the manager's state lock.
/// </remarks>
internal sealed class ServableRecord
{
    /// <summary>Ascending by version.</summary>
    public List<LoaderHarness> Harnesses { get; } = [];

    public Dictionary<string, long> Labels { get; } = new(StringComparer.Ordinal);

    /// <summary>The latest aspired set not yet applied.</summary>
    public ServableData<Loader>[]? Pending { get; set; }

    public LoaderHarness? Find(long version) => Harnesses.Find(h => h.Id.Version == version);

    /// <summary>Inserts <paramref name="h"/> where its version keeps the list ascending.</summary>
    public void Add(LoaderHarness h)
    {
        int at = Harnesses.FindIndex(x => x.Id.Version > h.Id.Version);
        Harnesses.Insert(at < 0 ? Harnesses.Count : at, h);
    }
}
