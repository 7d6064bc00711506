namespace Servables;

/// <summary>Configures an <see cref="AspiredVersionsManager"/>.</summary>
/// <remarks>The manager copies these values when it is constructed; later changes have no effect on it.</remarks>
public sealed class AspiredVersionsManagerOptions
{
    private const string LoadTimeoutMinimum = "00:00:00.001";
    private const string LoadTimeoutMaximum = "1.00:00:00";

    /// <summary>The range of <see cref="LoadTimeout"/>, applied also to each of <see cref="ServableLoadTimeouts"/>.</summary>
    private static readonly TimeSpanRangeAttribute LoadTimeoutRange = new(LoadTimeoutMinimum, LoadTimeoutMaximum) { AllowInfinite = true };

    /// <summary>How versions are swapped.</summary>
    /// <value>Defaults to <see cref="AspiredVersionPolicy.AvailabilityPreserving"/>.</value>
    [OptionRequired]
    public AspiredVersionPolicy Policy { get; set; } = AspiredVersionPolicy.AvailabilityPreserving;

    /// <summary>How many loads may run at once.</summary>
    /// <value>1 to 64. Defaults to 1.</value>
    [OptionRange(1, 64)]
    public int LoadWorkerCount { get; set; } = 1;

    /// <summary>How many unloads may run at once.</summary>
    /// <value>1 to 64. Defaults to 1.</value>
    [OptionRange(1, 64)]
    public int UnloadWorkerCount { get; set; } = 1;

    /// <summary>How many times a failed load is retried before the version goes to error.</summary>
    /// <value>0 to 1000. Defaults to 5.</value>
    [OptionRange(0, 1000)]
    public int MaxLoadRetries { get; set; } = 5;

    /// <summary>How long to wait before retrying a failed load.</summary>
    /// <value>Zero to one day. Defaults to 5 seconds.</value>
    [TimeSpanRange("00:00:00", "1.00:00:00")]
    public TimeSpan LoadRetryInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Decides whether a failed load is worth retrying; null retries every failure.</summary>
    /// <value>Defaults to null.</value>
    public Func<ServableId, Exception, bool>? ShouldRetryLoad { get; set; }

    /// <summary>
    /// How long one load attempt may run. When it elapses, the attempt's cancellation token is
    /// cancelled, the version goes to error ("load timed out after …") and is not retried (the
    /// loader may still be running it), and the load worker is free for other loads. The version's
    /// resource reservation is released when the attempt really returns; a servable it produces
    /// after the timeout is unloaded at once.
    /// </summary>
    /// <value>1 millisecond to 1 day, or <see cref="Timeout.InfiniteTimeSpan"/>. Defaults to 10 minutes.</value>
    [TimeSpanRange(LoadTimeoutMinimum, LoadTimeoutMaximum, AllowInfinite = true)]
    public TimeSpan LoadTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Load timeouts for particular servables, by name; they override <see cref="LoadTimeout"/> (for a model that takes longer, or one that should fail sooner).</summary>
    /// <value>Same range as <see cref="LoadTimeout"/>. Empty by default.</value>
    public IDictionary<string, TimeSpan> ServableLoadTimeouts { get; } = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);

    /// <summary>
    /// How long <see cref="AspiredVersionsManager.DisposeAsync"/> and
    /// <see cref="AspiredVersionsManager.StopAsync"/> wait for loads and unloads in progress. When it
    /// elapses (or the token given to <see cref="AspiredVersionsManager.StopAsync"/> is cancelled, if
    /// sooner), the unloads' cancellation token is cancelled, what is still running is logged by name
    /// and abandoned, and the stop returns.
    /// </summary>
    /// <value>Zero to 1 hour, or <see cref="Timeout.InfiniteTimeSpan"/>. Defaults to 30 seconds (the host's default shutdown timeout).</value>
    [TimeSpanRange("00:00:00", "01:00:00", AllowInfinite = true)]
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// True to give freed native memory back to the operating system after each unload
    /// (<c>malloc_trim</c> on glibc-based Linux; nothing elsewhere). Inference engines free large
    /// native buffers when a session is destroyed, and glibc keeps them mapped, so without this a
    /// process that swaps versions grows in resident memory although it uses no more.
    /// </summary>
    /// <value>Defaults to true.</value>
    public bool ReleaseNativeMemoryAfterUnload { get; set; } = true;

    /// <summary>
    /// How often the state loop runs when nothing wakes it. It also runs at once whenever a source
    /// sends versions or a load or unload finishes. <see cref="Timeout.InfiniteTimeSpan"/> starts no
    /// loop at all: the host drives it with <see cref="AspiredVersionsManager.ManageStateAsync"/> (tests do).
    /// </summary>
    /// <value>1 millisecond to 1 hour, or <see cref="Timeout.InfiniteTimeSpan"/>. Defaults to 100 milliseconds.</value>
    [TimeSpanRange("00:00:00.001", "01:00:00", AllowInfinite = true)]
    public TimeSpan ManageStateInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The most resources loaded versions may use together; loads that would exceed it are refused.</summary>
    /// <value>Defaults to null: no budget.</value>
    public ResourceAllocation? ResourceBudget { get; set; }

    /// <summary>The clock for retries, timestamps and the state loop.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    [OptionRequired]
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>
    /// The ranges are the attributes on the properties, checked by a validator that
    /// <c>[OptionsValidator]</c> generates; the entries of <see cref="ServableLoadTimeouts"/> are checked
    /// here against the same range as <see cref="LoadTimeout"/> (attributes cannot name a dictionary entry).
    /// </remarks>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = AspiredVersionsManagerOptionsValidator.Instance.Validate(null, this).Problems();
        foreach ((string name, TimeSpan timeout) in ServableLoadTimeouts)
        {
            if (LoadTimeoutRange.Describe($"{nameof(ServableLoadTimeouts)}[\"{name}\"]", timeout) is { } problem)
            {
                errors.Add(problem);
            }
        }

        return errors;
    }
}
