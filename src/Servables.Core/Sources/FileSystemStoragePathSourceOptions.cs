namespace Servables;

/// <summary>Configures a <see cref="FileSystemStoragePathSource"/>.</summary>
public sealed class FileSystemStoragePathSourceOptions
{
    /// <summary>The servables to watch; names must be unique.</summary>
    public IList<StoragePathServable> Servables { get; } = [];

    /// <summary>How often to look for new versions. <see cref="Timeout.InfiniteTimeSpan"/> polls only when <see cref="FileSystemStoragePathSource.PollAsync"/> is called.</summary>
    /// <value>10 milliseconds to 1 day, or infinite. Defaults to 1 second.</value>
    public TimeSpan PollPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When a base path is missing or holds no version folders: false (the default) keeps the
    /// versions that are serving and logs a warning; true aspires no versions, which unloads them all.
    /// </summary>
    public bool UnloadWhenNoVersions { get; set; }

    /// <summary>The clock for polling.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        foreach (StoragePathServable s in Servables)
        {
            if (s is null || string.IsNullOrEmpty(s.Name) || string.IsNullOrEmpty(s.BasePath) || s.VersionPolicy is null)
            {
                errors.Add("Every servable needs a name, a base path and a version policy.");
            }
        }

        foreach (var duplicate in Servables.Where(s => s is not null).GroupBy(s => s.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            errors.Add($"Servable '{duplicate.Key}' is listed {duplicate.Count()} times; names must be unique.");
        }

        if (PollPeriod != Timeout.InfiniteTimeSpan && (PollPeriod < TimeSpan.FromMilliseconds(10) || PollPeriod > TimeSpan.FromDays(1)))
        {
            errors.Add($"{nameof(PollPeriod)} must be between 10 ms and 1 day, or Timeout.InfiniteTimeSpan; it is {PollPeriod}.");
        }

        if (TimeProvider is null)
        {
            errors.Add($"{nameof(TimeProvider)} must be set.");
        }

        return errors;
    }
}
