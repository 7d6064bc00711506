namespace Servables;

/// <summary>The lifecycle states a manager reports for each servable version, in order.</summary>
public enum ServableManagerState
{
    /// <summary>The manager knows the version (a source aspired it) and will decide what to do with it.</summary>
    Start,

    /// <summary>The version is loading (including warm-up and retries).</summary>
    Loading,

    /// <summary>The version is loaded and handles to it can be acquired.</summary>
    Available,

    /// <summary>The version no longer hands out handles; it unloads once its last handle is released.</summary>
    Unloading,

    /// <summary>The version left the manager: unloaded, never loaded, or failed (<see cref="ServableState.Error"/> says which).</summary>
    End,
}
