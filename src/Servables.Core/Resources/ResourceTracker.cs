namespace Servables;

/// <summary>Keeps the sum of reserved resources within a budget.</summary>
/// <remarks>Not thread-safe: the manager calls it under its state lock.</remarks>
internal sealed class ResourceTracker
{
    private readonly ResourceAllocation? _budget;

    public ResourceTracker(ResourceAllocation? budget) => _budget = budget;

    public ResourceAllocation Used { get; private set; } = ResourceAllocation.None;

    /// <summary>Reserves <paramref name="estimate"/> if it fits next to what is used; otherwise says why not.</summary>
    public bool TryReserve(ResourceAllocation estimate, out string? refusal)
    {
        ResourceAllocation after = Used.Add(estimate);
        if (_budget is not null && !after.FitsWithin(_budget))
        {
            refusal = $"it needs {estimate}, and {Used} of the budget {_budget} is already reserved";
            return false;
        }

        Used = after;
        refusal = null;
        return true;
    }

    /// <summary>Could <paramref name="estimate"/> ever fit, if nothing else were loaded?</summary>
    public bool CouldEverFit(ResourceAllocation estimate) => _budget is null || estimate.FitsWithin(_budget);

    public void Release(ResourceAllocation reserved) => Used = Used.Subtract(reserved);
}
