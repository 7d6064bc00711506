namespace Servables;

/// <summary>The next step a policy picks for one servable.</summary>
/// <param name="Kind">Load or unload.</param>
/// <param name="Id">The version to act on.</param>
public readonly record struct AspiredVersionAction(AspiredVersionActionKind Kind, ServableId Id)
{
    /// <summary>Load <paramref name="id"/>.</summary>
    public static AspiredVersionAction Load(ServableId id) => new(AspiredVersionActionKind.Load, id);

    /// <summary>Unload <paramref name="id"/>.</summary>
    public static AspiredVersionAction Unload(ServableId id) => new(AspiredVersionActionKind.Unload, id);
}
