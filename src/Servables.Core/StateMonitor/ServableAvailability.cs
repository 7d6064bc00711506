namespace Servables;

/// <summary>The outcome of <see cref="ServableStateMonitor.WaitUntilAvailableAsync"/>.</summary>
/// <param name="IsAvailable">True when every request resolved to an available version before the timeout.</param>
/// <param name="States">Per request, the state it was last seen in: the available version, the failed one, or null when nothing was known.</param>
public sealed record ServableAvailability(bool IsAvailable, IReadOnlyDictionary<ServableRequest, ServableState?> States)
{
    /// <summary>Describes the requests that are not available, for an error message.</summary>
    public string DescribeUnavailable() => string.Join(
        "; ",
        States.Where(kv => kv.Value is not { State: ServableManagerState.Available })
            .Select(kv => kv.Value is null ? $"{kv.Key}: unknown to the manager" : $"{kv.Key}: {kv.Value}"));
}
