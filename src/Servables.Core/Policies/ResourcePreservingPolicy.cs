namespace Servables;

/// <summary>Unloads old versions before loading new ones; see <see cref="AspiredVersionPolicy.ResourcePreserving"/>.</summary>
/// <remarks>Stateless and thread-safe.</remarks>
internal sealed class ResourcePreservingPolicy : AspiredVersionPolicy
{
    public override AspiredVersionAction? GetNextAction(IReadOnlyList<AspiredVersionState> versions)
    {
        foreach (AspiredVersionState v in versions)
        {
            if (!v.IsAspired && v.State == AspiredVersionLoadState.Available)
            {
                return AspiredVersionAction.Unload(v.Id);
            }
        }

        // Wait until every version on its way out has released its resources.
        foreach (AspiredVersionState v in versions)
        {
            if (!v.IsAspired && v.State is AspiredVersionLoadState.Loading or AspiredVersionLoadState.Unloading)
            {
                return null;
            }
        }

        return HighestNewAspiredVersion(versions) is { } next ? AspiredVersionAction.Load(next.Id) : null;
    }
}
