namespace Servables;

/// <summary>The manager's own view of one version's lifecycle (finer than <see cref="ServableManagerState"/>).</summary>
internal enum HarnessState
{
    /// <summary>Aspired; not loading yet.</summary>
    New,

    /// <summary>A load worker is loading it, or waiting to retry.</summary>
    Loading,

    /// <summary>Loaded and in the serving map.</summary>
    Available,

    /// <summary>Out of the serving map; waiting for its last lease to end.</summary>
    Quiescing,

    /// <summary>Its last lease ended; an unload worker is unloading it.</summary>
    Unloading,

    /// <summary>Unloaded; removed from the manager.</summary>
    Unloaded,

    /// <summary>Failed for good; stays while aspired so that it is not loaded again.</summary>
    Error,
}
