namespace Servables;

/// <summary>Where a version stands in the manager, as a policy sees it.</summary>
public enum AspiredVersionLoadState
{
    /// <summary>Known to the manager; its load has not started.</summary>
    New,

    /// <summary>Loading, or waiting to retry a failed load.</summary>
    Loading,

    /// <summary>Loaded and serving.</summary>
    Available,

    /// <summary>No longer served: waiting for its last handle, or unloading.</summary>
    Unloading,

    /// <summary>Unloaded; about to leave the manager.</summary>
    Unloaded,

    /// <summary>Its load failed for good (or its source reported an error).</summary>
    Error,
}
