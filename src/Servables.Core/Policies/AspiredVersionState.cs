namespace Servables;

/// <summary>One version of a servable as an <see cref="AspiredVersionPolicy"/> sees it.</summary>
/// <param name="Id">The version.</param>
/// <param name="IsAspired">True while the version is in the latest aspired set its source sent.</param>
/// <param name="State">Where the version stands.</param>
public readonly record struct AspiredVersionState(ServableId Id, bool IsAspired, AspiredVersionLoadState State);
