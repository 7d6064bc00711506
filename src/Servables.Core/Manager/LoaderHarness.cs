namespace Servables;

/// <summary>Everything the manager tracks about one version: its loader, state, reservation and lease.</summary>
/// <remarks>
/// Lifecycle: New → Loading → Available → Quiescing → Unloading → Unloaded, or → Error from New or
/// Loading. All fields but the lease count are read and written under the manager's state lock.
/// A load attempt that timed out may still be running after the harness went to Error (or left the
/// manager): <see cref="AbandonedLoad"/> is that attempt until it really returns.
/// </remarks>
internal sealed class LoaderHarness
{
    private readonly Action<LoaderHarness> _onDrained;

    public LoaderHarness(ServableId id, Loader? loader, Action<LoaderHarness> onDrained)
    {
        Id = id;
        Loader = loader;
        _onDrained = onDrained;
    }

    public ServableId Id { get; }

    /// <summary>Null only for a version whose source reported an error.</summary>
    public Loader? Loader { get; }

    public HarnessState State { get; set; } = HarnessState.New;

    public bool IsAspired { get; set; } = true;

    /// <summary>
    /// Cancelled when the version stops being aspired, its load times out or the manager stops: ends
    /// the load and pending retries. Not linked to any longer-lived source, so nothing outlives the
    /// harness through it (it has no timer and no wait handle, so it needs no disposal).
    /// </summary>
    public CancellationTokenSource Cancellation { get; } = new();

    /// <summary>A load attempt that outlived its timeout and still runs; it holds <see cref="Reserved"/> until it returns.</summary>
    public Task? AbandonedLoad { get; set; }

    public ResourceAllocation Reserved { get; set; } = ResourceAllocation.None;

    public LoadedVersion? Loaded { get; set; }

    public Exception? Error { get; set; }

    public Task? LoadTask { get; set; }

    public Task? UnloadTask { get; set; }

    /// <summary>True once a deferred load was logged, so that the log says it once.</summary>
    public bool DeferralLogged { get; set; }

    public AspiredVersionLoadState PolicyState => State switch
    {
        HarnessState.New => AspiredVersionLoadState.New,
        HarnessState.Loading => AspiredVersionLoadState.Loading,
        HarnessState.Available => AspiredVersionLoadState.Available,
        HarnessState.Quiescing or HarnessState.Unloading => AspiredVersionLoadState.Unloading,
        HarnessState.Unloaded => AspiredVersionLoadState.Unloaded,
        _ => AspiredVersionLoadState.Error,
    };

    /// <summary>Called by the lease that brought the count to zero, on whatever thread released it.</summary>
    public void OnDrained() => _onDrained(this);
}
