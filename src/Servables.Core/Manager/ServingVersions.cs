using System.Collections.Frozen;

namespace Servables;

/// <summary>The available versions of one servable, ascending, and its labels; part of a <see cref="ServingMap"/>.</summary>
/// <remarks>Immutable and thread-safe.</remarks>
internal sealed class ServingVersions
{
    public ServingVersions(string name, LoadedVersion[] ascending, FrozenDictionary<string, long> labels)
    {
        Name = name;
        Ascending = ascending;
        Labels = labels;
    }

    public string Name { get; }

    public LoadedVersion[] Ascending { get; }

    public FrozenDictionary<string, long> Labels { get; }

    public LoadedVersion? FindVersion(long version)
    {
        foreach (LoadedVersion v in Ascending)
        {
            if (v.Id.Version == version)
            {
                return v;
            }
        }

        return null;
    }
}
