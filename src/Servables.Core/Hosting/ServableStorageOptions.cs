namespace Servables;

/// <summary>How the hosted storage source watches the base paths registered with <c>AddStoragePathServable</c>.</summary>
public sealed class ServableStorageOptions
{
    /// <summary>How often to look for new version folders.</summary>
    /// <value>10 milliseconds to 1 day, or <see cref="Timeout.InfiniteTimeSpan"/> (no polling after the first). Defaults to 1 second.</value>
    [TimeSpanRange("00:00:00.010", "1.00:00:00", AllowInfinite = true)]
    public TimeSpan PollPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>True to unload every version of a servable whose base path goes missing or empty; false (the default) keeps them serving.</summary>
    public bool UnloadWhenNoVersions { get; set; }

    /// <summary>
    /// True (the default) to make the host's start wait until every registered servable has a
    /// version available, as TensorFlow Serving waits for the initial load of every model before it
    /// serves; hosted services registered after <c>AddServables</c> (the async APIs) then start with
    /// models loaded. A servable whose versions all ended in error fails the start with that error.
    /// False starts at once and loads in the background. (With the manager's
    /// <see cref="AspiredVersionsManagerOptions.ManageStateInterval"/> infinite, nothing loads unless the
    /// host drives the manager, so the wait runs into <see cref="InitialLoadTimeout"/>: turn it off.)
    /// </summary>
    public bool WaitForInitialLoad { get; set; } = true;

    /// <summary>How long the start waits for the initial loads (<see cref="WaitForInitialLoad"/>) before it fails, naming what is not available yet.</summary>
    /// <value>1 millisecond to 1 day, or <see cref="Timeout.InfiniteTimeSpan"/>. Defaults to 5 minutes.</value>
    [TimeSpanRange("00:00:00.001", "1.00:00:00", AllowInfinite = true)]
    public TimeSpan InitialLoadTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The registered servables and their loader factories.</summary>
    internal List<StoragePathRegistration> Registrations { get; } = [];
}
