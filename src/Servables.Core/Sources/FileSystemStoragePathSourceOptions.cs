namespace Servables;

/// <summary>Configures a <see cref="FileSystemStoragePathSource"/>.</summary>
public sealed class FileSystemStoragePathSourceOptions
{
    /// <summary>The servables to watch; names must be unique.</summary>
    public IList<StoragePathServable> Servables { get; } = [];

    /// <summary>How often to look for new versions. <see cref="Timeout.InfiniteTimeSpan"/> polls only when <see cref="FileSystemStoragePathSource.PollAsync"/> is called.</summary>
    /// <value>10 milliseconds to 1 day, or infinite. Defaults to 1 second.</value>
    [TimeSpanRange("00:00:00.010", "1.00:00:00", AllowInfinite = true)]
    public TimeSpan PollPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When a base path is missing or holds no version folders: false (the default) keeps the
    /// versions that are serving and logs a warning; true aspires no versions, which unloads them all.
    /// </summary>
    public bool UnloadWhenNoVersions { get; set; }

    /// <summary>The clock for polling.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    [OptionRequired]
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>
    /// The ranges are the attributes on the properties, checked by a validator that
    /// <c>[OptionsValidator]</c> generates; the servable list (complete entries, unique names) is
    /// checked here, as no attribute compares the items of a list with each other.
    /// </remarks>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = FileSystemStoragePathSourceOptionsValidator.Instance.Validate(null, this).Problems();
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

        return errors;
    }
}
