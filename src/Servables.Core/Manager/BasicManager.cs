using System.Collections.Frozen;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Servables;

/// <summary>
/// The manager's machinery below the aspired-versions logic: the harness map, loads and unloads on
/// sized worker pools, resource admission, load timeouts and abandoned loads, state-change
/// publication, the serving-map snapshot, and the bounded stop. After TensorFlow Serving's
/// <c>BasicManager</c>.
/// </summary>
/// <remarks>
/// <para>
/// Lifecycle: created by an <see cref="AspiredVersionsManager"/>, which decides what to load and
/// unload and calls <see cref="StartManaging"/>, <see cref="TryStartLoad"/>, <see cref="BeginRetire"/> and
/// <see cref="StopManaging"/> under <see cref="Gate"/>; this class carries those decisions out and
/// reports every state change, in order, to the observers. <see cref="BeginStop"/> then
/// <see cref="StopAsync"/> end it; nothing is loaded after that, and a version still leased unloads
/// when its last handle is released.
/// </para>
/// <para>
/// Guarantees: a loader is never loaded and unloaded at once, and never loaded twice; its
/// reservation is held from the start of its load until its unload (or its abandoned attempt)
/// returns; a version is in the serving map exactly while it is Available (until the stop begins);
/// a failure fails its own version only. <see cref="AssertInvariants"/> checks these in debug builds.
/// </para>
/// <para>
/// Thread-safety: members documented "under the lock" must be called holding <see cref="Gate"/>;
/// the others take it themselves. Observers are called under it.
/// </para>
/// </remarks>
#pragma warning disable CA1001 // _unloadsAbandoned has no timer and no wait handle: nothing to dispose. The manager's stop is its end of life.
internal sealed class BasicManager
#pragma warning restore CA1001
{
    private readonly Dictionary<string, ServableRecord> _records = new(StringComparer.Ordinal);
    private readonly ResourceTracker _resources;
    private readonly WorkerPool _loadWorkers;
    private readonly WorkerPool _unloadWorkers;
    private readonly CancellationTokenSource _unloadsAbandoned = new();
    private readonly HashSet<LoaderHarness> _abandonedLoads = [];
    private readonly LoadRetrySettings _retry;
    private readonly TimeSpan _loadTimeout;
    private readonly FrozenDictionary<string, TimeSpan> _servableLoadTimeouts;
    private readonly TimeSpan _stopTimeout;
    private readonly bool _releaseNativeMemory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CoreMetrics _metrics;
    private readonly Action<LoaderHarness> _onDrained;
    private readonly Action<ServingMap> _servingMapChanged;
    private readonly Action _workFinished;
    private IObserver<ServableState>[] _observers = [];
    private ServingMap _servingMap = ServingMap.Empty;
    private bool _stopping;

    /// <summary>Creates the machinery from validated options.</summary>
    /// <param name="options">Validated options; read now only.</param>
    /// <param name="logger">Where to log.</param>
    /// <param name="metrics">The manager's instruments.</param>
    /// <param name="servingMapChanged">Receives each new serving map, under the lock (the manager keeps it where its hot path reads it).</param>
    /// <param name="workFinished">Called after each load or unload finishes, outside the lock (wakes the state loop).</param>
    public BasicManager(AspiredVersionsManagerOptions options, ILogger logger, CoreMetrics metrics, Action<ServingMap> servingMapChanged, Action workFinished)
    {
        _retry = new LoadRetrySettings(options.MaxLoadRetries, options.LoadRetryInterval, options.ShouldRetryLoad, options.TimeProvider, logger);
        _loadTimeout = options.LoadTimeout;
        _servableLoadTimeouts = options.ServableLoadTimeouts.ToFrozenDictionary(StringComparer.Ordinal);
        _stopTimeout = options.StopTimeout;
        _releaseNativeMemory = options.ReleaseNativeMemoryAfterUnload;
        _time = options.TimeProvider;
        _resources = new ResourceTracker(options.ResourceBudget);
        _logger = logger;
        _metrics = metrics;
        _servingMapChanged = servingMapChanged;
        _workFinished = workFinished;
        _onDrained = OnDrained;
        _loadWorkers = new WorkerPool(options.LoadWorkerCount);
        _unloadWorkers = new WorkerPool(options.UnloadWorkerCount);
    }

    /// <summary>The state lock: guards the records, their harnesses, the reservations and the observers.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Every servable name tracked now. Under the lock.</summary>
    public Dictionary<string, ServableRecord> Records => _records;

    /// <summary>True once <see cref="BeginStop"/> ran: nothing new is managed, and the serving map is empty from the stop on.</summary>
    public bool IsStopping => Volatile.Read(ref _stopping);

    /// <summary>The resources reserved now by versions that are loading, loaded or not yet unloaded.</summary>
    public ResourceAllocation ReservedResources
    {
        get
        {
            lock (Gate)
            {
                return _resources.Used;
            }
        }
    }

    /// <summary>Subscribes to every state change of every version, in order.</summary>
    public IDisposable Subscribe(IObserver<ServableState> observer)
    {
        lock (Gate)
        {
            _observers = [.. _observers, observer];
        }

        return new Unsubscriber(this, observer);
    }

    /// <summary>The record of <paramref name="name"/>, created if new. Under the lock.</summary>
    public ServableRecord GetOrAddRecord(string name)
    {
        if (!_records.TryGetValue(name, out ServableRecord? record))
        {
            record = new ServableRecord();
            _records.Add(name, record);
        }

        return record;
    }

    /// <summary>Starts managing a newly aspired version: New, or Error at once when its source sent an error. Under the lock.</summary>
    public void StartManaging(ServableRecord record, ServableData<Loader> item)
    {
        var h = new LoaderHarness(item.Id, item.HasValue ? item.Value : null, _onDrained);
        record.Add(h);
        Publish(h.Id, ServableManagerState.Start, null);
        if (!item.HasValue)
        {
            Log.SourceReportedError(_logger, item.Id, item.Error!);
            Fail(record, h, HarnessState.New, new ServableLoadException(item.Id, $"The source of {item.Id} reported an error instead of a loader: {item.Error!.Message}", item.Error));
        }
    }

    /// <summary>Stops managing a version that never loaded (New: ends it) or failed (Error: drops it). Under the lock.</summary>
    public void StopManaging(ServableRecord record, LoaderHarness h)
    {
        Debug.Assert(h.State is HarnessState.New or HarnessState.Error, $"{h.Id} is {h.State}");
        record.Harnesses.Remove(h);
        if (h.State == HarnessState.New)
        {
            Publish(h.Id, ServableManagerState.End, null);
        }
    }

    /// <summary>
    /// Reserves resources for a New version and queues its load, or defers it (it could fit once
    /// work in flight finishes) or refuses it (it never could: the version goes to Error). Under the lock.
    /// </summary>
    /// <returns>The queued load, which completes when it finished; null when deferred or refused.</returns>
    public Task? TryStartLoad(LoaderHarness h)
    {
        ServableRecord record = _records[h.Id.Name];
        ResourceAllocation estimate;
        try
        {
            estimate = h.Loader!.EstimateResources() ?? ResourceAllocation.None;
        }
#pragma warning disable CA1031 // A faulty loader fails its own version only.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fail(record, h, HarnessState.New, new ServableLoadException(h.Id, $"Estimating the resources of {h.Id} failed: {ex.Message}", ex));
            return null;
        }

        if (!_resources.TryReserve(estimate, out string? refusal))
        {
            if (_resources.CouldEverFit(estimate) && AnyLifecycleWorkInFlight())
            {
                if (!h.DeferralLogged)
                {
                    Log.LoadDeferred(_logger, h.Id, refusal!);
                    h.DeferralLogged = true;
                }

                return null;
            }

            Log.LoadRefused(_logger, h.Id, refusal!);
            Fail(record, h, HarnessState.New, new ServableLoadException(h.Id, $"Not enough resources to load {h.Id}: {refusal}. Unload other versions, use the ResourcePreserving policy, or raise the manager's ResourceBudget.")
            {
                IsResourceRefusal = true,
            });
            return null;
        }

        h.Reserved = estimate;
        h.TransitionState(HarnessState.New, HarnessState.Loading);
        Publish(h.Id, ServableManagerState.Loading, null);
        Log.VersionLoading(_logger, h.Id);
        h.LoadTask = _loadWorkers.Enqueue(() => LoadAsync(h));
        return h.LoadTask;
    }

    /// <summary>Takes a loaded version out of service (the caller republishes the map, then calls <see cref="ReleaseRetired"/>). Under the lock.</summary>
    public void BeginRetire(LoaderHarness h, HarnessState from)
    {
        h.TransitionState(from, HarnessState.Quiescing);
        Publish(h.Id, ServableManagerState.Unloading, null);
        Log.VersionUnloading(_logger, h.Id);
    }

    /// <summary>Drops the serving map's reference of each retired version; those with no handles start unloading now. Outside the lock.</summary>
    /// <param name="retired">Versions passed to <see cref="BeginRetire"/> whose map without them is published.</param>
    /// <param name="started">Collects the unloads that started, when the caller waits for them.</param>
    public void ReleaseRetired(List<LoaderHarness>? retired, List<Task>? started)
    {
        foreach (LoaderHarness h in retired ?? [])
        {
            h.Loaded!.Retire();
            if (started is not null)
            {
                lock (Gate)
                {
                    if (h.UnloadTask is not null)
                    {
                        started.Add(h.UnloadTask);
                    }
                }
            }
        }
    }

    /// <summary>Builds and publishes a new snapshot of the available versions (none once stopping). Under the lock.</summary>
    public void PublishServingMap()
    {
        var servables = new List<ServingVersions>();
        if (!_stopping)
        {
            foreach ((string name, ServableRecord record) in _records)
            {
                LoadedVersion[] available = record.Harnesses.Where(h => h.State == HarnessState.Available).Select(h => h.Loaded!).ToArray();
                if (available.Length > 0)
                {
                    servables.Add(new ServingVersions(name, available, record.Labels.ToFrozenDictionary(StringComparer.Ordinal)));
                }
            }
        }

        _servingMap = ServingMap.Create(servables);
        _servingMapChanged(_servingMap);
    }

    /// <summary>Marks the start of the stop: nothing loaded from now on serves. Under the lock.</summary>
    public void BeginStop() => Volatile.Write(ref _stopping, true);

    /// <summary>
    /// The bounded stop, after <see cref="BeginStop"/>: starts the stop timeout, runs
    /// <paramref name="stopStateLoop"/> (the caller's state loop must end before the harnesses are
    /// touched), ends versions that never loaded, cancels loads, retires what serves, and waits for
    /// loads, unloads and the workers until the timeout elapses or <paramref name="cancellationToken"/>
    /// is cancelled; then cancels the unloads' token and logs by name what it abandoned.
    /// </summary>
    public async Task StopAsync(Func<Task> stopStateLoop, CancellationToken cancellationToken)
    {
        using var deadline = _stopTimeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(_stopTimeout, _time);
        using CancellationTokenRegistration linked = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadline);
        CancellationToken limit = deadline.Token;

        await stopStateLoop().ConfigureAwait(false);

        var retire = new List<LoaderHarness>();
        var loads = new List<Task>();
        var cancels = new List<LoaderHarness>();
        lock (Gate)
        {
            foreach (ServableRecord record in _records.Values)
            {
                foreach (LoaderHarness h in record.Harnesses.ToArray())
                {
                    switch (h.State)
                    {
                        case HarnessState.New or HarnessState.Error:
                            StopManaging(record, h);
                            break;
                        case HarnessState.Available:
                            BeginRetire(h, HarnessState.Available);
                            retire.Add(h);
                            break;
                        case HarnessState.Loading when h.LoadTask is not null:
                            loads.Add(h.LoadTask);
                            cancels.Add(h);
                            break;
                    }
                }
            }

            foreach (LoaderHarness h in _abandonedLoads)
            {
                loads.Add(h.AbandonedLoad!);
            }

            PublishServingMap();
            AssertInvariants();
        }

        foreach (LoaderHarness h in cancels)
        {
            await h.CancelQuietlyAsync(_logger).ConfigureAwait(false);
        }

        ReleaseRetired(retire, null);
        bool finished = await WaitBoundedAsync(Task.WhenAll(loads), limit).ConfigureAwait(false);

        var unloads = new List<Task>();
        var stillLeased = new List<ServableId>();
        lock (Gate)
        {
            foreach (LoaderHarness h in _records.Values.SelectMany(r => r.Harnesses))
            {
                if (h.UnloadTask is not null)
                {
                    unloads.Add(h.UnloadTask);
                }
                else if (h.State == HarnessState.Quiescing)
                {
                    stillLeased.Add(h.Id);
                }
            }
        }

        if (stillLeased.Count > 0)
        {
            Log.VersionsStillLeased(_logger, string.Join(", ", stillLeased));
        }

        // Queued work still runs; work queued from now on (a handle released later) runs on the thread pool.
        Task workers = Task.WhenAll(_loadWorkers.StopAsync(), _unloadWorkers.StopAsync());
        finished = finished
            && await WaitBoundedAsync(Task.WhenAll(unloads), limit).ConfigureAwait(false)
            && await WaitBoundedAsync(workers, limit).ConfigureAwait(false);
        if (!finished)
        {
            await _unloadsAbandoned.CancelAsync().ConfigureAwait(false);
            string running;
            lock (Gate)
            {
                running = string.Join(", ", _records.Values.SelectMany(r => r.Harnesses)
                    .Where(h => h.State is HarnessState.Loading or HarnessState.Unloading)
                    .Concat(_abandonedLoads)
                    .Select(h => $"{h.Id} ({(h.State == HarnessState.Unloading ? "unloading" : "loading")})")
                    .Distinct());
            }

            Log.StopAbandoned(_logger, _stopTimeout, running.Length == 0 ? "(lifecycle workers only)" : running);
        }
    }

    /// <summary>Every version tracked now, by servable name, ascending (for health checks).</summary>
    public Dictionary<string, VersionReport[]> DescribeVersions()
    {
        lock (Gate)
        {
            return _records.ToDictionary(
                kv => kv.Key,
                kv => kv.Value.Harnesses.Select(h => new VersionReport(h.Id, h.State, h.IsAspired, h.Error)).ToArray(),
                StringComparer.Ordinal);
        }
    }

    /// <summary>
    /// Checks, in debug builds, what must hold whenever <see cref="Gate"/> is released: records hold
    /// live harnesses in ascending version order; a New or Error harness is aspired; the reserved
    /// resources are the sum of the harnesses' and abandoned loads' reservations; a harness that loaded
    /// has its <see cref="LoadedVersion"/>; and, until the stop, the serving map holds exactly the
    /// Available versions. Under the lock, at the end of each section that changes state.
    /// </summary>
    [Conditional("DEBUG")]
    public void AssertInvariants()
    {
        Debug.Assert(Gate.IsHeldByCurrentThread, "AssertInvariants runs under the state lock.");
        ResourceAllocation reserved = ResourceAllocation.None;
        var counted = new HashSet<LoaderHarness>();
        int available = 0;
        foreach ((string name, ServableRecord record) in _records)
        {
            long previous = long.MinValue;
            foreach (LoaderHarness h in record.Harnesses)
            {
                Debug.Assert(string.Equals(h.Id.Name, name, StringComparison.Ordinal), $"{h.Id} is in the record of '{name}'.");
                Debug.Assert(h.Id.Version > previous, $"The versions of '{name}' are not strictly ascending at {h.Id}.");
                previous = h.Id.Version;
                Debug.Assert(h.State != HarnessState.Unloaded, $"{h.Id} is Unloaded but still in its record.");
                Debug.Assert(h.State is not (HarnessState.New or HarnessState.Error) || h.IsAspired, $"{h.Id} is {h.State} but no longer aspired.");
                Debug.Assert(h.State != HarnessState.Loading || h.LoadTask is not null, $"{h.Id} is Loading with no load queued.");
                Debug.Assert(h.State is not (HarnessState.Available or HarnessState.Quiescing or HarnessState.Unloading) || h.Loaded is not null, $"{h.Id} is {h.State} without a loaded version.");
                Debug.Assert(h.State != HarnessState.Unloading || h.UnloadTask is not null, $"{h.Id} is Unloading with no unload queued.");
                Debug.Assert(
                    h.Reserved.IsEmpty || h.AbandonedLoad is not null || h.State is HarnessState.Loading or HarnessState.Available or HarnessState.Quiescing or HarnessState.Unloading,
                    $"{h.Id} is {h.State} and still reserves {h.Reserved}.");
                if (h.State == HarnessState.Available)
                {
                    available++;
                    Debug.Assert(
                        _stopping || (_servingMap.TryGetVersions(name, out ServingVersions? versions) && ReferenceEquals(versions.FindVersion(h.Id.Version), h.Loaded)),
                        $"{h.Id} is Available but not in the serving map.");
                }

                if (counted.Add(h))
                {
                    reserved = reserved.Add(h.Reserved);
                }
            }
        }

        foreach (LoaderHarness h in _abandonedLoads)
        {
            Debug.Assert(h.AbandonedLoad is not null, $"{h.Id} is listed as an abandoned load without one.");
            if (counted.Add(h))
            {
                reserved = reserved.Add(h.Reserved);
            }
        }

        Debug.Assert(reserved.Equals(_resources.Used), $"{_resources.Used} is reserved, but the harnesses reserve {reserved}.");
        Debug.Assert(_stopping || _servingMap.Count == available, $"The serving map holds {_servingMap.Count} versions; {available} are Available.");
    }

    /// <summary>True when <paramref name="work"/> finished before <paramref name="limit"/> was cancelled.</summary>
    private static async Task<bool> WaitBoundedAsync(Task work, CancellationToken limit)
    {
        try
        {
            await work.WaitAsync(limit).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            return false;
        }
    }

    private bool AnyLifecycleWorkInFlight() =>
        _abandonedLoads.Count > 0 || _records.Values.Any(r => r.Harnesses.Any(h => h.State is HarnessState.Loading or HarnessState.Quiescing or HarnessState.Unloading));

    private async Task LoadAsync(LoaderHarness h)
    {
        long started = _time.GetTimestamp();
        using var activity = CoreMetrics.ActivitySource.StartActivity("servables.load");
        activity?.SetTag("servable.name", h.Id.Name);
        activity?.SetTag("servable.version", h.Id.Version);
        Loader loader = h.Loader!;
        TimeSpan timeout = _servableLoadTimeouts.GetValueOrDefault(h.Id.Name, _loadTimeout);
        LoadOutcome outcome = await h.LoadWithRetriesAsync(timeout, _retry).ConfigureAwait(false);

        object? servable = null;
        if (!outcome.Cancelled && outcome.Failure is null)
        {
            servable = loader.Servable;
            if (servable is null)
            {
                outcome = outcome with { Failure = new InvalidOperationException($"{TypeNames.Readable(loader.GetType())} finished loading {h.Id} without a servable (its Servable property is null).") };
                await UnloadQuietlyAsync(loader).ConfigureAwait(false);
            }
        }

        double seconds = _time.GetElapsedTime(started).TotalSeconds;
        _metrics.Loads.Add(1, new("servable", h.Id.Name), new("outcome", outcome.Tag));
        _metrics.LoadDuration.Record(seconds, new KeyValuePair<string, object?>("servable", h.Id.Name));
        activity?.SetTag("outcome", outcome.Tag);

        bool retireNow = false;
        lock (Gate)
        {
            ServableRecord record = _records[h.Id.Name];
            if (servable is not null)
            {
                ShrinkReservation(h, loader);
                h.Loaded = new LoadedVersion(h, servable);
                if (_stopping)
                {
                    BeginRetire(h, HarnessState.Loading);
                    retireNow = true;
                }
                else
                {
                    h.TransitionState(HarnessState.Loading, HarnessState.Available);
                    PublishServingMap();
                    Publish(h.Id, ServableManagerState.Available, null);
                    Log.VersionAvailable(_logger, h.Id, seconds * 1000);
                }
            }
            else
            {
                if (outcome.Abandoned is null)
                {
                    _resources.Release(h.Reserved);
                    h.Reserved = ResourceAllocation.None;
                }
                else
                {
                    // The attempt still runs and may still be using what was reserved for it.
                    h.AbandonedLoad = outcome.Abandoned;
                    _abandonedLoads.Add(h);
                }

                if (outcome.Cancelled)
                {
                    Log.LoadCancelled(_logger, h.Id);
                    h.TransitionState(HarnessState.Loading, HarnessState.Unloaded);
                    record.Harnesses.Remove(h);
                    Publish(h.Id, ServableManagerState.End, null);
                }
                else if (outcome.Abandoned is not null)
                {
                    Log.VersionLoadTimedOut(_logger, h.Id, timeout, outcome.Attempts);
                    Fail(record, h, HarnessState.Loading, new ServableLoadException(h.Id, outcome.Failure!.Message, outcome.Failure));
                }
                else
                {
                    Log.VersionLoadFailed(_logger, h.Id, outcome.Attempts, outcome.Failure!);
                    Fail(record, h, HarnessState.Loading, new ServableLoadException(h.Id, $"Loading {h.Id} failed after {outcome.Attempts} attempt(s); the last attempt failed with: {outcome.Failure!.Message}", outcome.Failure));
                }
            }

            AssertInvariants();
        }

        if (outcome.Abandoned is not null)
        {
            _ = FinishAbandonedLoadAsync(h, outcome.Abandoned);
        }

        if (retireNow)
        {
            ReleaseRetired([h], null);
        }

        _workFinished();
    }

    /// <summary>Waits for a load attempt that timed out; releases its reservation and unloads what it produced.</summary>
    private async Task FinishAbandonedLoadAsync(LoaderHarness h, Task attempt)
    {
        try
        {
            await attempt.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The version is already in error with the timeout; this outcome is only logged.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        if (attempt.IsCompletedSuccessfully)
        {
            await UnloadQuietlyAsync(h.Loader!).ConfigureAwait(false);
        }

        lock (Gate)
        {
            _resources.Release(h.Reserved);
            h.Reserved = ResourceAllocation.None;
            h.AbandonedLoad = null;
            _abandonedLoads.Remove(h);
            AssertInvariants();
        }

        Log.AbandonedLoadReturned(_logger, h.Id, attempt.Status == TaskStatus.RanToCompletion ? "succeeded; its servable was unloaded" : "failed");
        _workFinished();
    }

    /// <summary>After a load, the estimate may have shrunk; give the difference back. Under the lock.</summary>
    private void ShrinkReservation(LoaderHarness h, Loader loader)
    {
        try
        {
            ResourceAllocation after = (loader.EstimateResources() ?? ResourceAllocation.None).Min(h.Reserved);
            _resources.Release(h.Reserved.Subtract(after));
            h.Reserved = after;
        }
#pragma warning disable CA1031 // Keep the full reservation when the loader cannot say.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private async Task UnloadQuietlyAsync(Loader loader)
    {
        try
        {
            await loader.UnloadAsync(_unloadsAbandoned.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Best effort after a failed load; the failure is already reported.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>The last lease on a retired version ended (on any thread): queue its unload.</summary>
    private void OnDrained(LoaderHarness h)
    {
        lock (Gate)
        {
            h.TransitionState(HarnessState.Quiescing, HarnessState.Unloading);
            h.UnloadTask = _unloadWorkers.Enqueue(() => UnloadAsync(h));
            AssertInvariants();
        }
    }

    private async Task UnloadAsync(LoaderHarness h)
    {
        long started = _time.GetTimestamp();
        Exception? error = null;
        try
        {
            await h.Loader!.UnloadAsync(_unloadsAbandoned.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A failing unload is reported; the manager goes on.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = ex;
            Log.VersionUnloadFailed(_logger, h.Id, ex);
        }

        if (_releaseNativeMemory && NativeMemoryRelease.Release() is bool released)
        {
            Log.NativeMemoryReleased(_logger, h.Id, released);
        }

        double seconds = _time.GetElapsedTime(started).TotalSeconds;
        _metrics.Unloads.Add(1, new("servable", h.Id.Name), new("outcome", error is null ? "success" : "error"));
        _metrics.UnloadDuration.Record(seconds, new KeyValuePair<string, object?>("servable", h.Id.Name));
        lock (Gate)
        {
            h.TransitionState(HarnessState.Unloading, HarnessState.Unloaded);
            h.Loaded = null;
            _resources.Release(h.Reserved);
            h.Reserved = ResourceAllocation.None;
            if (_records.TryGetValue(h.Id.Name, out ServableRecord? record))
            {
                record.Harnesses.Remove(h);
            }

            Publish(h.Id, ServableManagerState.End, error);
            AssertInvariants();
        }

        if (error is null)
        {
            Log.VersionUnloaded(_logger, h.Id, seconds * 1000);
        }

        _workFinished();
    }

    /// <summary>Puts a version in error; an un-aspired one leaves the manager. Under the lock.</summary>
    private void Fail(ServableRecord record, LoaderHarness h, HarnessState from, ServableLoadException error)
    {
        h.TransitionState(from, HarnessState.Error);
        h.Error = error;
        if (!h.IsAspired)
        {
            record.Harnesses.Remove(h);
        }

        Publish(h.Id, ServableManagerState.End, error);
    }

    /// <summary>Tells every observer about a state change. Under the lock, so that observers see changes in order.</summary>
    private void Publish(ServableId id, ServableManagerState state, Exception? error)
    {
        var change = new ServableState(id, state, error, _time.GetUtcNow());
        foreach (IObserver<ServableState> observer in _observers)
        {
            try
            {
                observer.OnNext(change);
            }
#pragma warning disable CA1031 // An observer's fault must not break the manager.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.ObserverFailed(_logger, ex);
            }
        }
    }

    private sealed class Unsubscriber(BasicManager manager, IObserver<ServableState> observer) : IDisposable
    {
        public void Dispose()
        {
            lock (manager.Gate)
            {
                manager._observers = [.. manager._observers.Where(o => !ReferenceEquals(o, observer))];
            }
        }
    }
}
