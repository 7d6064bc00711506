namespace Servables;

/// <summary>One servable a <see cref="FileSystemStoragePathSource"/> watches: its name, its base path and which versions to aspire.</summary>
/// <param name="Name">The servable's name.</param>
/// <param name="BasePath">The folder whose numeric sub-folders (<c>1</c>, <c>2</c>, …) are the versions.</param>
public sealed record StoragePathServable(string Name, string BasePath)
{
    /// <summary>Which versions to aspire.</summary>
    /// <value>Defaults to <see cref="ServableVersionPolicy.Latest(int)"/> with a count of 1.</value>
    public ServableVersionPolicy VersionPolicy { get; init; } = ServableVersionPolicy.Latest();
}
