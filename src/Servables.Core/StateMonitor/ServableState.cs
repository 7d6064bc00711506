namespace Servables;

/// <summary>A state change of one servable version, as the manager publishes it.</summary>
/// <param name="Id">The version.</param>
/// <param name="State">The state it entered.</param>
/// <param name="Error">Why it failed, when it did; a version in <see cref="ServableManagerState.End"/> with an error is "in error".</param>
/// <param name="Timestamp">When the manager recorded the change (its <see cref="TimeProvider"/>).</param>
public sealed record ServableState(ServableId Id, ServableManagerState State, Exception? Error, DateTimeOffset Timestamp)
{
    /// <summary>True when the version failed (its load failed for good, or its source reported an error).</summary>
    public bool IsError => Error is not null;

    /// <inheritdoc />
    public override string ToString() => Error is null ? $"{Id} {State}" : $"{Id} {State} (error: {Error.Message})";
}
