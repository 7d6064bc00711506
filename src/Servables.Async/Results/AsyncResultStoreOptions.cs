namespace Servables.Async;

/// <summary>What every result store needs: how long finished results stay, and the clock.</summary>
public sealed class AsyncResultStoreOptions
{
    /// <summary>How long a finished request stays readable, counted from when it finished.</summary>
    /// <value>1 second to 365 days. Defaults to 7 days.</value>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>The clock that decides expiry.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>For the in-memory store: the most requests it keeps; expired ones are evicted first, then the oldest finished ones.</summary>
    /// <value>1 to 100,000,000. Defaults to 100,000.</value>
    public int MaxEntries { get; set; } = 100_000;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Retention < TimeSpan.FromSeconds(1) || Retention > TimeSpan.FromDays(365))
        {
            errors.Add($"{nameof(Retention)} must be between 1 second and 365 days; it is {Retention}.");
        }

        if (MaxEntries is < 1 or > 100_000_000)
        {
            errors.Add($"{nameof(MaxEntries)} must be between 1 and 100,000,000; it is {MaxEntries}.");
        }

        if (TimeProvider is null)
        {
            errors.Add($"{nameof(TimeProvider)} must be set.");
        }

        return errors;
    }
}
