namespace Servables;

/// <summary>Configures a <see cref="ServableStateMonitor"/>.</summary>
public sealed class ServableStateMonitorOptions
{
    /// <summary>How many state changes the event log keeps; the oldest go first.</summary>
    /// <value>0 (no log) to 1,000,000. Defaults to 1024.</value>
    public int MaxLogEvents { get; set; } = 1024;

    /// <summary>
    /// How many versions that reached <see cref="ServableManagerState.End"/> (unloaded, or failed)
    /// the monitor keeps the state of; the ones that ended first are forgotten first. Versions that
    /// have not ended are always kept, so memory is bounded by the versions alive plus this.
    /// </summary>
    /// <value>0 (forget a version as soon as it ends) to 1,000,000. Defaults to 1024.</value>
    public int MaxEndedVersions { get; set; } = 1024;

    /// <summary>The clock for <see cref="ServableStateMonitor.WaitUntilAvailableAsync"/> timeouts.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxLogEvents is < 0 or > 1_000_000)
        {
            errors.Add($"{nameof(MaxLogEvents)} must be between 0 and 1,000,000; it is {MaxLogEvents}.");
        }

        if (MaxEndedVersions is < 0 or > 1_000_000)
        {
            errors.Add($"{nameof(MaxEndedVersions)} must be between 0 and 1,000,000; it is {MaxEndedVersions}.");
        }

        if (TimeProvider is null)
        {
            errors.Add($"{nameof(TimeProvider)} must be set.");
        }

        return errors;
    }
}
