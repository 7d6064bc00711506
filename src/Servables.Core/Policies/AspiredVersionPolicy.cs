namespace Servables;

/// <summary>Decides, one step at a time, how a servable moves from the versions it has to the versions it is asked to have.</summary>
/// <remarks>
/// <para>
/// The manager calls <see cref="GetNextAction"/> for each servable on every turn of its state
/// loop, with every version it knows of that servable, and carries out at most one action per
/// servable per turn. A policy only picks: it never loads, unloads or waits itself.
/// </para>
/// <para>
/// The manager only honours <see cref="AspiredVersionActionKind.Load"/> for a version in
/// <see cref="AspiredVersionLoadState.New"/> and <see cref="AspiredVersionActionKind.Unload"/> for one in
/// <see cref="AspiredVersionLoadState.Available"/> that is not aspired; other actions are ignored and logged.
/// </para>
/// <para>Implementations must be stateless or thread-safe: one instance may serve several managers.</para>
/// </remarks>
public abstract class AspiredVersionPolicy
{
    /// <summary>
    /// Load the new version first, unload the old one once the new one is available: a request for
    /// the latest version is always served during a swap, at the cost of holding two versions for a while.
    /// A serving version is never unloaded because a newer one failed to load. The default.
    /// </summary>
    public static AspiredVersionPolicy AvailabilityPreserving { get; } = new AvailabilityPreservingPolicy();

    /// <summary>
    /// Unload the old version (and wait for its handles to drain) before loading the new one: never
    /// more than the aspired versions in memory, at the cost of a gap in service. For models that fill the device.
    /// </summary>
    public static AspiredVersionPolicy ResourcePreserving { get; } = new ResourcePreservingPolicy();

    /// <summary>Picks the next action for one servable, or null to do nothing now.</summary>
    /// <param name="versions">Every version of the servable the manager knows, in ascending version order.</param>
    public abstract AspiredVersionAction? GetNextAction(IReadOnlyList<AspiredVersionState> versions);

    /// <summary>The aspired version in <see cref="AspiredVersionLoadState.New"/> with the highest number, if any.</summary>
    protected static AspiredVersionState? HighestNewAspiredVersion(IReadOnlyList<AspiredVersionState> versions)
    {
        ArgumentNullException.ThrowIfNull(versions);
        AspiredVersionState? best = null;
        foreach (AspiredVersionState v in versions)
        {
            if (v.IsAspired && v.State == AspiredVersionLoadState.New && (best is null || v.Id.Version > best.Value.Id.Version))
            {
                best = v;
            }
        }

        return best;
    }
}
