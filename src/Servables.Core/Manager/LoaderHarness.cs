using Microsoft.Extensions.Logging;

namespace Servables;

/// <summary>One version's lifecycle in the manager: its loader, state, reservation, lease and load retries.</summary>
/// <remarks>
/// <para>
/// After TensorFlow Serving's <c>LoaderHarness</c>. Lifecycle (see <see cref="HarnessState"/> for the
/// whole graph): New → Loading → Available → Quiescing → Unloading → Unloaded, or → Error from New or
/// Loading, or → Unloaded from Loading when the load is cancelled, or Loading → Quiescing when the
/// load finishes while the manager stops. Every move goes through <see cref="TransitionState"/>,
/// which throws on any other move, so that a bug shows up as a clear error and not as a version
/// stuck in a state nothing expects.
/// </para>
/// <para>
/// <see cref="LoadWithRetriesAsync"/> runs the loader's load, attempt after attempt, as
/// <c>LoaderHarness::LoadWithRetries</c> does: each attempt bounded by the load timeout; a failed one
/// retried after the retry interval while retries are left and the predicate agrees; the whole loop
/// ended by <see cref="Cancellation"/>. The harness never unloads and never touches the manager's
/// state; the manager acts on the outcome.
/// </para>
/// <para>
/// A load attempt that timed out may still be running after the harness went to Error (or left the
/// manager): <see cref="AbandonedLoad"/> is that attempt until it really returns.
/// </para>
/// <para>
/// Thread-safety: every member but <see cref="LoadWithRetriesAsync"/> and <see cref="OnDrained"/> is read
/// and written under the manager's state lock; the load runs on one load worker at a time.
/// </para>
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

    /// <summary>Where the version is in its lifecycle; changed only through <see cref="TransitionState"/>.</summary>
    public HarnessState State { get; private set; } = HarnessState.New;

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

    /// <summary>True for a move the lifecycle allows (see <see cref="HarnessState"/>).</summary>
    public static bool IsLegal(HarnessState from, HarnessState to) => (from, to) switch
    {
        (HarnessState.New, HarnessState.Loading or HarnessState.Error) => true,
        (HarnessState.Loading, HarnessState.Available or HarnessState.Quiescing or HarnessState.Unloaded or HarnessState.Error) => true,
        (HarnessState.Available, HarnessState.Quiescing) => true,
        (HarnessState.Quiescing, HarnessState.Unloading) => true,
        (HarnessState.Unloading, HarnessState.Unloaded) => true,
        _ => false,
    };

    /// <summary>Moves from <paramref name="from"/> to <paramref name="to"/>. Under the lock.</summary>
    /// <exception cref="InvalidOperationException">The harness is not in <paramref name="from"/>, or the lifecycle has no such move.</exception>
    public void TransitionState(HarnessState from, HarnessState to)
    {
        if (State != from)
        {
            throw new InvalidOperationException($"Cannot move {Id} from {from} to {to}: it is {State}, not {from}.");
        }

        if (!IsLegal(from, to))
        {
            throw new InvalidOperationException($"Cannot move {Id} from {from} to {to}: the lifecycle has no such move.");
        }

        State = to;
    }

    /// <summary>
    /// Loads, retrying failed attempts. Each attempt runs on the thread pool and may take at most
    /// <paramref name="timeout"/>; one that outlives it is abandoned (its token is cancelled, and it is
    /// not retried: the loader may still be running it). Ends early, cancelled, when
    /// <see cref="Cancellation"/> is cancelled during an attempt or a wait to retry.
    /// </summary>
    /// <param name="timeout">The per-attempt limit, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="settings">Retries, interval, predicate, clock and logger.</param>
    /// <returns>How the load ended; never throws for the loader's failures.</returns>
    public async Task<LoadOutcome> LoadWithRetriesAsync(TimeSpan timeout, LoadRetrySettings settings)
    {
        CancellationToken cancellationToken = Cancellation.Token;
        Loader loader = Loader!;
        int attempts = 0;
        while (true)
        {
            attempts++;

            // On the thread pool, so that a loader that blocks before its first await cannot hold this
            // worker past the timeout either.
            Task attempt = Task.Run(() => loader.LoadAsync(cancellationToken), CancellationToken.None);
            try
            {
                await attempt.WaitAsync(timeout, settings.Time).ConfigureAwait(false);
                return new LoadOutcome(attempts, null, null, false);
            }
            catch (TimeoutException) when (!attempt.IsCompleted)
            {
                var failure = new TimeoutException(
                    $"Loading {Id} timed out after {timeout} (attempt {attempts}); its cancellation token was cancelled and the attempt abandoned. "
                    + "Raise AspiredVersionsManagerOptions.LoadTimeout (or ServableLoadTimeouts for this servable) if the model needs longer.");
                await CancelQuietlyAsync(settings.Logger).ConfigureAwait(false);
                return new LoadOutcome(attempts, failure, attempt, false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return new LoadOutcome(attempts, null, null, true);
            }
#pragma warning disable CA1031 // A failing loader fails its own version only.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                if (attempts > settings.MaxRetries || !ShouldRetry(ex, settings))
                {
                    return new LoadOutcome(attempts, ex, null, false);
                }

                Log.VersionLoadRetrying(settings.Logger, Id, attempts, settings.MaxRetries + 1, settings.RetryInterval, ex);
                try
                {
                    await Task.Delay(settings.RetryInterval, settings.Time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return new LoadOutcome(attempts, null, null, true);
                }
            }
        }
    }

    /// <summary>Called by the lease that brought the count to zero, on whatever thread released it.</summary>
    public void OnDrained() => _onDrained(this);

    /// <summary>Cancels <see cref="Cancellation"/>; a callback a loader registered on it must not fail the load loop.</summary>
    public async Task CancelQuietlyAsync(ILogger logger)
    {
        try
        {
            await Cancellation.CancelAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A loader's cancellation callback failed; the load reports its own outcome.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ManageStateFailed(logger, ex);
        }
    }

    private bool ShouldRetry(Exception error, LoadRetrySettings settings)
    {
        if (settings.ShouldRetry is null)
        {
            return true;
        }

        try
        {
            return settings.ShouldRetry(Id, error);
        }
#pragma warning disable CA1031 // A throwing predicate means "do not retry".
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ManageStateFailed(settings.Logger, ex);
            return false;
        }
    }
}
