namespace Servables;

/// <summary>Loads new versions before unloading old ones; see <see cref="AspiredVersionPolicy.AvailabilityPreserving"/>.</summary>
/// <remarks>Stateless and thread-safe.</remarks>
internal sealed class AvailabilityPreservingPolicy : AspiredVersionPolicy
{
    public override AspiredVersionAction? GetNextAction(IReadOnlyList<AspiredVersionState> versions)
    {
        bool anyAspired = false;
        bool aspiredAvailable = false;
        AspiredVersionState? unaspiredAvailable = null;
        foreach (AspiredVersionState v in versions)
        {
            if (v.IsAspired)
            {
                anyAspired = true;
                aspiredAvailable |= v.State == AspiredVersionLoadState.Available;
            }
            else if (v.State == AspiredVersionLoadState.Available && unaspiredAvailable is null)
            {
                unaspiredAvailable = v;
            }
        }

        // An old version goes once a new one serves in its place, or when nothing is aspired at all
        // (the source asked for zero versions). While aspired versions are loading or have failed,
        // the old version keeps serving: errors never reduce availability.
        if (unaspiredAvailable is { } old && (aspiredAvailable || !anyAspired))
        {
            return AspiredVersionAction.Unload(old.Id);
        }

        return HighestNewAspiredVersion(versions) is { } next ? AspiredVersionAction.Load(next.Id) : null;
    }
}
