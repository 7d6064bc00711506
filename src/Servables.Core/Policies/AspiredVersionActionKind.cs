namespace Servables;

/// <summary>What an <see cref="AspiredVersionAction"/> asks the manager to do.</summary>
public enum AspiredVersionActionKind
{
    /// <summary>Start loading a version in <see cref="AspiredVersionLoadState.New"/>.</summary>
    Load,

    /// <summary>Stop serving an <see cref="AspiredVersionLoadState.Available"/> version and unload it after its last handle is released.</summary>
    Unload,
}
