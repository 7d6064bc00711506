namespace Servables.Async;

/// <summary>What every result store needs: how long finished results stay, and the clock.</summary>
public sealed class AsyncResultStoreOptions
{
    /// <summary>How long a finished request stays readable, counted from when it finished.</summary>
    /// <value>1 second to 365 days. Defaults to 7 days.</value>
    [TimeSpanRange("00:00:01", "365.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>The clock that decides expiry.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    [OptionRequired]
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>For the in-memory store: the most requests it keeps; expired ones are evicted first, then the oldest finished ones.</summary>
    /// <value>1 to 100,000,000. Defaults to 100,000.</value>
    [OptionRange(1, 100_000_000)]
    public int MaxEntries { get; set; } = 100_000;

    /// <summary>The name of the API the store serves, so that a store shared by several APIs (one SQLite file, one Redis) keeps each API's requests apart.</summary>
    /// <remarks>Set by the API before it calls <see cref="AsyncApiOptions.StoreFactory"/>; a store created by hand may leave it.</remarks>
    /// <value>Defaults to <see cref="AsyncApiOptions.DefaultName"/>.</value>
    public string ApiName { get; set; } = AsyncApiOptions.DefaultName;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>The rules are the attributes on the properties, checked by a validator that <c>[OptionsValidator]</c> generates.</remarks>
    public IReadOnlyList<string> Validate() => AsyncResultStoreOptionsValidator.Instance.Validate(null, this).Problems();
}
