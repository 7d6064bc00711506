namespace Servables;

/// <summary>Configures a <see cref="ServableStateMonitor"/>.</summary>
public sealed class ServableStateMonitorOptions
{
    /// <summary>How many state changes the event log keeps; the oldest go first.</summary>
    /// <value>0 (no log) to 1,000,000. Defaults to 1024.</value>
    [OptionRange(0, 1_000_000)]
    public int MaxLogEvents { get; set; } = 1024;

    /// <summary>
    /// How many versions that reached <see cref="ServableManagerState.End"/> (unloaded, or failed)
    /// the monitor keeps the state of; the ones that ended first are forgotten first. Versions that
    /// have not ended are always kept, so memory is bounded by the versions alive plus this.
    /// </summary>
    /// <value>0 (forget a version as soon as it ends) to 1,000,000. Defaults to 1024.</value>
    [OptionRange(0, 1_000_000)]
    public int MaxEndedVersions { get; set; } = 1024;

    /// <summary>The clock for <see cref="ServableStateMonitor.WaitUntilAvailableAsync"/> timeouts.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    [OptionRequired]
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>The rules are the attributes on the properties, checked by a validator that <c>[OptionsValidator]</c> generates.</remarks>
    public IReadOnlyList<string> Validate() => ServableStateMonitorOptionsValidator.Instance.Validate(null, this).Problems();
}
