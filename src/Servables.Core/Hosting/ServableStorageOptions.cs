namespace Servables;

/// <summary>How the hosted storage source watches the base paths registered with <c>AddStoragePathServable</c>.</summary>
public sealed class ServableStorageOptions
{
    /// <summary>How often to look for new version folders.</summary>
    /// <value>10 milliseconds to 1 day. Defaults to 1 second.</value>
    public TimeSpan PollPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>True to unload every version of a servable whose base path goes missing or empty; false (the default) keeps them serving.</summary>
    public bool UnloadWhenNoVersions { get; set; }

    /// <summary>The registered servables and their loader factories.</summary>
    internal List<StoragePathRegistration> Registrations { get; } = [];
}
