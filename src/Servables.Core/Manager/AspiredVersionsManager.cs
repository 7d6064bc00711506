using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Servables;

/// <summary>
/// Loads, serves and unloads servable versions so that the loaded set follows what sources aspire,
/// and hands out leases on the loaded ones. The heart of Servables.Core, after TensorFlow Serving's
/// manager of the same name.
/// </summary>
/// <remarks>
/// <para>
/// Sources call <see cref="SetAspiredVersions"/> with the full desired set of versions of a
/// servable; the manager records it and, on the next turn of its state loop, asks the
/// <see cref="AspiredVersionPolicy"/> for one action per servable (load a new version, unload an
/// old one) and hands loads and unloads to separate, sized worker pools. Versions left out of the
/// latest set are unloaded; nothing is unloaded for any other reason, and a failed load never
/// unloads a serving version.
/// </para>
/// <para>
/// Handles: <see cref="GetServableHandle{T}"/> resolves a request against an immutable snapshot
/// of the available versions and increments that version's lease count, without locks and without
/// allocating. A retired version leaves the snapshot at once, but its loader is unloaded only after
/// its last handle is released, asynchronously and per version: a held handle never delays any other
/// version or servable.
/// </para>
/// <para>
/// State changes are published, in order, to <see cref="IObservable{T}"/> subscribers such as a
/// <see cref="ServableStateMonitor"/>. Observers are called synchronously under the manager's state
/// lock: keep them short and never wait on the manager from inside one.
/// </para>
/// <para>All public members are thread-safe.</para>
/// </remarks>
public sealed class AspiredVersionsManager : IServableManager, IAspiredVersionsTarget<Loader>, IObservable<ServableState>, IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ServableRecord> _servables = new(StringComparer.Ordinal);
    private readonly ResourceTracker _resources;
    private readonly WorkerPool _loadWorkers;
    private readonly WorkerPool _unloadWorkers;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _unloadsAbandoned = new();
    private readonly AspiredVersionPolicy _policy;
    private readonly int _maxLoadRetries;
    private readonly TimeSpan _loadRetryInterval;
    private readonly Func<ServableId, Exception, bool>? _shouldRetryLoad;
    private readonly TimeSpan _manageStateInterval;
    private readonly TimeSpan _loadTimeout;
    private readonly FrozenDictionary<string, TimeSpan> _servableLoadTimeouts;
    private readonly TimeSpan _stopTimeout;
    private readonly bool _releaseNativeMemory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CoreMetrics _metrics;
    private readonly Counter<long> _handleAcquisitions; // _metrics.HandleAcquisitions, one load closer to the hot path.
    private readonly Action<LoaderHarness> _onDrained;
    private readonly Task? _loop;
    private ServingMap _servingMap = ServingMap.Empty;
    private IObserver<ServableState>[] _observers = [];
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HashSet<LoaderHarness> _abandonedLoads = [];
    private TaskCompletionSource? _stopped;
    private bool _disposed;

    /// <summary>Creates a manager and, unless <see cref="AspiredVersionsManagerOptions.ManageStateInterval"/> is infinite, starts its state loop.</summary>
    /// <param name="options">The options; null for the defaults. Copied: later changes have no effect.</param>
    /// <param name="logger">Where the manager logs; null for none.</param>
    /// <param name="meterFactory">Creates the "Servables.Core" meter; null to create it directly.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    public AspiredVersionsManager(AspiredVersionsManagerOptions? options = null, ILogger<AspiredVersionsManager>? logger = null, IMeterFactory? meterFactory = null)
    {
        options ??= new AspiredVersionsManagerOptions();
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid AspiredVersionsManagerOptions: " + string.Join(" ", errors), nameof(options));
        }

        _policy = options.Policy;
        _maxLoadRetries = options.MaxLoadRetries;
        _loadRetryInterval = options.LoadRetryInterval;
        _shouldRetryLoad = options.ShouldRetryLoad;
        _manageStateInterval = options.ManageStateInterval;
        _loadTimeout = options.LoadTimeout;
        _servableLoadTimeouts = options.ServableLoadTimeouts.ToFrozenDictionary(StringComparer.Ordinal);
        _stopTimeout = options.StopTimeout;
        _releaseNativeMemory = options.ReleaseNativeMemoryAfterUnload;
        _time = options.TimeProvider;
        _resources = new ResourceTracker(options.ResourceBudget);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _metrics = new CoreMetrics(meterFactory, () => Volatile.Read(ref _servingMap).Count);
        _handleAcquisitions = _metrics.HandleAcquisitions;
        _onDrained = OnDrained;
        _loadWorkers = new WorkerPool(options.LoadWorkerCount);
        _unloadWorkers = new WorkerPool(options.UnloadWorkerCount);
        if (_manageStateInterval != Timeout.InfiniteTimeSpan)
        {
            _loop = Task.Run(RunLoopAsync);
        }
    }

    /// <summary>The resources reserved now by versions that are loading, loaded or not yet unloaded.</summary>
    public ResourceAllocation ReservedResources
    {
        get
        {
            lock (_gate)
            {
                return _resources.Used;
            }
        }
    }

    /// <inheritdoc />
    public ServableHandle<T> GetServableHandle<T>(ServableRequest request)
        where T : class
    {
        if (!TryGetServableHandle(request, out ServableHandle<T> handle))
        {
            ThrowNotAvailable(request);
        }

        return handle;
    }

    /// <inheritdoc />
    public bool TryGetServableHandle<T>(ServableRequest request, out ServableHandle<T> handle)
        where T : class
    {
        LoadedVersion? version;
        UntypedServableHandle lease;
        long token;
        do
        {
            version = Volatile.Read(ref _servingMap).Find(request);
            if (version is null)
            {
                handle = default;
                return false;
            }
        }
        while (!version.TryAcquire(out lease, out token)); // Retired between the read and the acquire: the next snapshot no longer has it.

        handle = Lease<T>(version, lease, token);
        if (_handleAcquisitions.Enabled)
        {
            _handleAcquisitions.Add(1, new KeyValuePair<string, object?>("servable", version.Id.Name));
        }

        return true;
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<ServableId, ServableHandle<T>> GetAvailableServableHandles<T>()
        where T : class
    {
        var handles = new Dictionary<ServableId, ServableHandle<T>>();
        foreach (ServingVersions servable in Volatile.Read(ref _servingMap).Servables)
        {
            foreach (LoadedVersion version in servable.Ascending)
            {
                if (version.Servable is T && version.TryAcquire(out UntypedServableHandle lease, out long token))
                {
                    handles.Add(version.Id, Lease<T>(version, lease, token));
                }
            }
        }

        return handles;
    }

    /// <inheritdoc />
    public IReadOnlyList<ServableId> ListAvailableServableIds()
    {
        var ids = new List<ServableId>();
        foreach (ServingVersions servable in Volatile.Read(ref _servingMap).Servables)
        {
            foreach (LoadedVersion version in servable.Ascending)
            {
                ids.Add(version.Id);
            }
        }

        ids.Sort();
        return ids;
    }

    /// <summary>Records the full set of versions of <paramref name="servableName"/> that should be loaded; acts on it on the next turn of the state loop.</summary>
    /// <param name="servableName">The servable.</param>
    /// <param name="versions">The desired versions with their loaders (or the errors that prevented a loader). Versions not listed are unloaded. Items naming another servable, and repeated versions, are ignored with a warning.</param>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public void SetAspiredVersions(string servableName, IReadOnlyList<ServableData<Loader>> versions)
    {
        ArgumentException.ThrowIfNullOrEmpty(servableName);
        ArgumentNullException.ThrowIfNull(versions);
        ServableData<Loader>[] copy = [.. versions];
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            Log.AspiredVersionsReceived(_logger, servableName, DescribeVersions(copy.Select(v => v.Id.Version)));
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            GetOrAddRecord(servableName).Pending = copy;
        }

        Wake();
    }

    /// <summary>Points <paramref name="label"/> of <paramref name="servableName"/> at <paramref name="version"/>, for <see cref="ServableRequest.Labeled"/>.</summary>
    /// <exception cref="InvalidOperationException">That version is not available: labels move only to available versions, so that requests for a label never start failing because of the move.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public void SetVersionLabel(string servableName, string label, long version)
    {
        ArgumentException.ThrowIfNullOrEmpty(servableName);
        ArgumentException.ThrowIfNullOrEmpty(label);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_servables.TryGetValue(servableName, out ServableRecord? record)
                || !record.Harnesses.Any(h => h.Id.Version == version && h.State == HarnessState.Available))
            {
                throw new InvalidOperationException(
                    $"Cannot point label '{label}' of servable '{servableName}' at version {version}: that version is not available. Wait until it is (see ServableStateMonitor.WaitUntilAvailableAsync), then set the label.");
            }

            record.Labels[label] = version;
            PublishServingMap();
        }
    }

    /// <summary>Removes <paramref name="label"/> of <paramref name="servableName"/>.</summary>
    /// <returns>True if the label existed.</returns>
    public bool RemoveVersionLabel(string servableName, string label)
    {
        ArgumentException.ThrowIfNullOrEmpty(servableName);
        ArgumentException.ThrowIfNullOrEmpty(label);
        lock (_gate)
        {
            if (_servables.TryGetValue(servableName, out ServableRecord? record) && record.Labels.Remove(label))
            {
                PublishServingMap();
                return true;
            }

            return false;
        }
    }

    /// <summary>
    /// Runs one turn of the state loop now: applies the latest aspired versions, asks the policy
    /// for one action per servable and starts it. The returned task completes when every load and
    /// unload this turn started has finished (an unload that waits for handles to be released is
    /// not waited for). Hosts rarely need this; tests drive the manager with it.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting; the actions go on.</param>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public Task ManageStateAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        return RunIteration().WaitAsync(cancellationToken);
    }

    /// <summary>Subscribes to every state change of every version, in order.</summary>
    /// <returns>Disposing it unsubscribes.</returns>
    public IDisposable Subscribe(IObserver<ServableState> observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        lock (_gate)
        {
            _observers = [.. _observers, observer];
        }

        return new Unsubscriber(this, observer);
    }

    /// <summary>
    /// Stops the manager: stops the state loop, cancels loads and retries, unloads every version whose
    /// handles have all been released and waits for those loads and unloads, for at most
    /// <see cref="AspiredVersionsManagerOptions.StopTimeout"/> or until <paramref name="cancellationToken"/>
    /// is cancelled (a host passes its shutdown timeout). What is still running then is logged by
    /// name and abandoned: the unloads' token is cancelled, and nothing is waited for any longer.
    /// A version whose handles are still held is unloaded when its last handle is released, after
    /// this returns (logged as a warning). Calling it again, or <see cref="DisposeAsync"/>, waits for
    /// the same stop.
    /// </summary>
    /// <param name="cancellationToken">Ends the wait early, as the timeout would.</param>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TaskCompletionSource? running;
        lock (_gate)
        {
            running = _stopped;
            if (running is null)
            {
                _stopped = mine;
                _disposed = true;
            }
        }

        if (running is not null)
        {
            return running.Task.WaitAsync(cancellationToken);
        }

        _ = RunStopAsync(mine, cancellationToken);
        return mine.Task;
    }

    /// <summary>Stops the manager as <see cref="StopAsync"/> does, bounded by <see cref="AspiredVersionsManagerOptions.StopTimeout"/>.</summary>
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    private async Task RunStopAsync(TaskCompletionSource stopped, CancellationToken cancellationToken)
    {
        try
        {
            await StopCoreAsync(cancellationToken).ConfigureAwait(false);
            stopped.TrySetResult();
        }
#pragma warning disable CA1031 // Reported to every caller of StopAsync and DisposeAsync.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            stopped.TrySetException(ex);
        }
    }

    private async Task StopCoreAsync(CancellationToken cancellationToken)
    {
        using var deadline = _stopTimeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(_stopTimeout, _time);
        using CancellationTokenRegistration linked = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadline);
        CancellationToken limit = deadline.Token;

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        var retire = new List<LoaderHarness>();
        var loads = new List<Task>();
        var cancels = new List<CancellationTokenSource>();
        lock (_gate)
        {
            foreach (ServableRecord record in _servables.Values)
            {
                record.Pending = null;
                foreach (LoaderHarness h in record.Harnesses.ToArray())
                {
                    switch (h.State)
                    {
                        case HarnessState.New:
                            record.Harnesses.Remove(h);
                            Publish(h.Id, ServableManagerState.End, null);
                            break;
                        case HarnessState.Error:
                            record.Harnesses.Remove(h);
                            break;
                        case HarnessState.Available:
                            BeginRetire(h);
                            retire.Add(h);
                            break;
                        case HarnessState.Loading when h.LoadTask is not null:
                            loads.Add(h.LoadTask);
                            cancels.Add(h.Cancellation);
                            break;
                    }
                }
            }

            foreach (LoaderHarness h in _abandonedLoads)
            {
                loads.Add(h.AbandonedLoad!);
            }

            PublishServingMap();
        }

        foreach (CancellationTokenSource cts in cancels)
        {
            await CancelQuietlyAsync(cts).ConfigureAwait(false);
        }

        ReleaseRetired(retire, null);
        bool finished = await WaitBoundedAsync(Task.WhenAll(loads), limit).ConfigureAwait(false);

        var unloads = new List<Task>();
        var stillLeased = new List<ServableId>();
        lock (_gate)
        {
            foreach (LoaderHarness h in _servables.Values.SelectMany(r => r.Harnesses))
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
            lock (_gate)
            {
                running = string.Join(", ", _servables.Values.SelectMany(r => r.Harnesses)
                    .Where(h => h.State is HarnessState.Loading or HarnessState.Unloading)
                    .Concat(_abandonedLoads)
                    .Select(h => $"{h.Id} ({(h.State == HarnessState.Unloading ? "unloading" : "loading")})")
                    .Distinct());
            }

            Log.StopAbandoned(_logger, _stopTimeout, running.Length == 0 ? "(lifecycle workers only)" : running);
        }

        _metrics.Dispose();
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

    /// <summary>Cancels a harness's source; a callback a loader registered on it must not fail the manager.</summary>
    private async Task CancelQuietlyAsync(CancellationTokenSource cts)
    {
        try
        {
            await cts.CancelAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A loader's cancellation callback failed; the load reports its own outcome.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ManageStateFailed(_logger, ex);
        }
    }

    private static ServableHandle<T> Lease<T>(LoadedVersion version, UntypedServableHandle lease, long token)
        where T : class
    {
        if (version.Servable is not T typed)
        {
            lease.TryEndLease(token);
            throw ServableHandle<T>.TypeMismatch(version.Id, version.Servable);
        }

        return new ServableHandle<T>(lease, typed, token, version.Id);
    }

    private async Task RunLoopAsync()
    {
        CancellationToken stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            if (Volatile.Read(ref _wake).Task.IsCompleted)
            {
                Volatile.Write(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            }

            try
            {
                _ = RunIteration();
            }
#pragma warning disable CA1031 // The loop must outlive any one failed turn.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.ManageStateFailed(_logger, ex);
            }

            await Task.WhenAny(Volatile.Read(ref _wake).Task, Task.Delay(_manageStateInterval, _time, stopping)).ConfigureAwait(false);
        }
    }

    private void Wake() => Volatile.Read(ref _wake).TrySetResult();

    private Task RunIteration()
    {
        List<LoaderHarness>? retire = null;
        List<CancellationTokenSource>? cancels = null;
        var started = new List<Task>();
        lock (_gate)
        {
            if (_disposed)
            {
                return Task.CompletedTask;
            }

            bool servingChanged = false;
            List<string>? emptyRecords = null;
            foreach ((string name, ServableRecord record) in _servables)
            {
                if (record.Pending is not null)
                {
                    ApplyPending(name, record, ref cancels);
                }

                if (record.Harnesses.Count == 0)
                {
                    if (record.Pending is null && record.Labels.Count == 0)
                    {
                        (emptyRecords ??= []).Add(name);
                    }

                    continue;
                }

                AspiredVersionAction? action;
                try
                {
                    action = _policy.GetNextAction(record.Harnesses.Select(h => new AspiredVersionState(h.Id, h.IsAspired, h.PolicyState)).ToArray());
                }
#pragma warning disable CA1031 // A faulty custom policy must not stop other servables.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    Log.ManageStateFailed(_logger, ex);
                    continue;
                }

                if (action is not { } next)
                {
                    continue;
                }

                LoaderHarness? h = next.Id.Name == name ? record.Find(next.Id.Version) : null;
                if (next.Kind == AspiredVersionActionKind.Load)
                {
                    if (h is null || h.State != HarnessState.New || !h.IsAspired)
                    {
                        Log.PolicyActionIgnored(_logger, TypeNames.Readable(_policy.GetType()), next.Kind, next.Id, h is null ? "unknown" : h.State.ToString());
                    }
                    else if (TryStartLoad(h))
                    {
                        h.LoadTask = _loadWorkers.Enqueue(() => LoadAsync(h));
                        started.Add(h.LoadTask);
                    }
                }
                else if (h is null || h.State != HarnessState.Available || h.IsAspired)
                {
                    Log.PolicyActionIgnored(_logger, TypeNames.Readable(_policy.GetType()), next.Kind, next.Id, h is null ? "unknown" : h.State.ToString());
                }
                else
                {
                    BeginRetire(h);
                    (retire ??= []).Add(h);
                    servingChanged = true;
                }
            }

            foreach (string name in emptyRecords ?? [])
            {
                _servables.Remove(name);
            }

            if (servingChanged)
            {
                PublishServingMap();
            }
        }

        foreach (CancellationTokenSource cts in cancels ?? [])
        {
            try
            {
                cts.Cancel();
            }
#pragma warning disable CA1031 // A loader's cancellation callback failed; the load reports its own outcome.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.ManageStateFailed(_logger, ex);
            }
        }

        ReleaseRetired(retire, started);
        return started.Count == 0 ? Task.CompletedTask : Task.WhenAll(started);
    }

    /// <summary>Applies the latest aspired set of one servable. Under the lock.</summary>
    private void ApplyPending(string name, ServableRecord record, ref List<CancellationTokenSource>? cancels)
    {
        ServableData<Loader>[] pending = record.Pending!;
        var requested = new Dictionary<long, ServableData<Loader>>();
        foreach (ServableData<Loader> item in pending)
        {
            if (!string.Equals(item.Id.Name, name, StringComparison.Ordinal))
            {
                Log.AspiredVersionIgnored(_logger, item.Id, name, "it names another servable");
            }
            else if (!requested.TryAdd(item.Id.Version, item))
            {
                Log.AspiredVersionIgnored(_logger, item.Id, name, "the version is listed twice; the first is used");
            }
        }

        // A version on its way out cannot come back until it has left: wait for it (as TF Serving does).
        if (record.Harnesses.Any(h => !h.IsAspired && requested.ContainsKey(h.Id.Version)
            && h.State is HarnessState.Loading or HarnessState.Quiescing or HarnessState.Unloading))
        {
            Log.AspiredVersionsDeferred(_logger, name, DescribeVersions(requested.Keys));
            return;
        }

        record.Pending = null;
        foreach (LoaderHarness h in record.Harnesses.ToArray())
        {
            if (requested.Remove(h.Id.Version))
            {
                // Still (or again) wanted: keep the existing harness and drop the new loader.
                h.IsAspired |= h.State == HarnessState.Available;
                continue;
            }

            if (!h.IsAspired)
            {
                continue;
            }

            h.IsAspired = false;
            switch (h.State)
            {
                case HarnessState.New:
                    record.Harnesses.Remove(h);
                    Publish(h.Id, ServableManagerState.End, null);
                    break;
                case HarnessState.Loading:
                    (cancels ??= []).Add(h.Cancellation);
                    break;
                case HarnessState.Error:
                    record.Harnesses.Remove(h);
                    break;
            }
        }

        foreach (ServableData<Loader> item in requested.Values)
        {
            var h = new LoaderHarness(item.Id, item.HasValue ? item.Value : null, _onDrained);
            record.Add(h);
            Publish(h.Id, ServableManagerState.Start, null);
            if (!item.HasValue)
            {
                Log.SourceReportedError(_logger, item.Id, item.Error!);
                Fail(record, h, new ServableLoadException(item.Id, $"The source of {item.Id} reported an error instead of a loader: {item.Error!.Message}", item.Error));
            }
        }
    }

    /// <summary>Reserves resources and marks the harness Loading, or defers or refuses it. Under the lock.</summary>
    private bool TryStartLoad(LoaderHarness h)
    {
        ServableRecord record = _servables[h.Id.Name];
        ResourceAllocation estimate;
        try
        {
            estimate = h.Loader!.EstimateResources() ?? ResourceAllocation.None;
        }
#pragma warning disable CA1031 // A faulty loader fails its own version only.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fail(record, h, new ServableLoadException(h.Id, $"Estimating the resources of {h.Id} failed: {ex.Message}", ex));
            return false;
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

                return false;
            }

            Log.LoadRefused(_logger, h.Id, refusal!);
            Fail(record, h, new ServableLoadException(h.Id, $"Not enough resources to load {h.Id}: {refusal}. Unload other versions, use the ResourcePreserving policy, or raise the manager's ResourceBudget.")
            {
                IsResourceRefusal = true,
            });
            return false;
        }

        h.Reserved = estimate;
        h.State = HarnessState.Loading;
        Publish(h.Id, ServableManagerState.Loading, null);
        Log.VersionLoading(_logger, h.Id);
        return true;
    }

    private bool AnyLifecycleWorkInFlight() =>
        _abandonedLoads.Count > 0 || _servables.Values.Any(r => r.Harnesses.Any(h => h.State is HarnessState.Loading or HarnessState.Quiescing or HarnessState.Unloading));

    private async Task LoadAsync(LoaderHarness h)
    {
        long started = _time.GetTimestamp();
        using var activity = CoreMetrics.ActivitySource.StartActivity("servables.load");
        activity?.SetTag("servable.name", h.Id.Name);
        activity?.SetTag("servable.version", h.Id.Version);
        CancellationToken cancellationToken = h.Cancellation.Token;
        Loader loader = h.Loader!;
        TimeSpan timeout = _servableLoadTimeouts.GetValueOrDefault(h.Id.Name, _loadTimeout);
        int attempts = 0;
        Exception? failure = null;
        Task? abandoned = null;
        bool cancelled = false;
        while (true)
        {
            attempts++;

            // On the thread pool, so that a loader that blocks before its first await cannot hold this
            // worker past the timeout either.
            Task attempt = Task.Run(() => loader.LoadAsync(cancellationToken), CancellationToken.None);
            try
            {
                await attempt.WaitAsync(timeout, _time).ConfigureAwait(false);
                failure = null;
                break;
            }
            catch (TimeoutException) when (!attempt.IsCompleted)
            {
                abandoned = attempt;
                failure = new TimeoutException(
                    $"Loading {h.Id} timed out after {timeout} (attempt {attempts}); its cancellation token was cancelled and the attempt abandoned. "
                    + "Raise AspiredVersionsManagerOptions.LoadTimeout (or ServableLoadTimeouts for this servable) if the model needs longer.");
                await CancelQuietlyAsync(h.Cancellation).ConfigureAwait(false);
                break;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                cancelled = true;
                break;
            }
#pragma warning disable CA1031 // A failing loader fails its own version only.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failure = ex;
                if (attempts > _maxLoadRetries || !ShouldRetry(h.Id, ex))
                {
                    break;
                }

                Log.VersionLoadRetrying(_logger, h.Id, attempts, _maxLoadRetries + 1, _loadRetryInterval, ex);
                try
                {
                    await Task.Delay(_loadRetryInterval, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    cancelled = true;
                    break;
                }
            }
        }

        object? servable = null;
        if (!cancelled && failure is null)
        {
            servable = loader.Servable;
            if (servable is null)
            {
                failure = new InvalidOperationException($"{TypeNames.Readable(loader.GetType())} finished loading {h.Id} without a servable (its Servable property is null).");
                await UnloadQuietlyAsync(loader).ConfigureAwait(false);
            }
        }

        double seconds = _time.GetElapsedTime(started).TotalSeconds;
        string outcome = cancelled ? "cancelled" : abandoned is not null ? "timeout" : failure is null ? "success" : "error";
        _metrics.Loads.Add(1, new("servable", h.Id.Name), new("outcome", outcome));
        _metrics.LoadDuration.Record(seconds, new KeyValuePair<string, object?>("servable", h.Id.Name));
        activity?.SetTag("outcome", outcome);

        bool retireNow = false;
        lock (_gate)
        {
            ServableRecord record = _servables[h.Id.Name];
            if (servable is not null)
            {
                ShrinkReservation(h, loader);
                h.Loaded = new LoadedVersion(h, servable);
                if (_disposed)
                {
                    BeginRetire(h);
                    retireNow = true;
                }
                else
                {
                    h.State = HarnessState.Available;
                    PublishServingMap();
                    Publish(h.Id, ServableManagerState.Available, null);
                    Log.VersionAvailable(_logger, h.Id, seconds * 1000);
                }
            }
            else
            {
                if (abandoned is null)
                {
                    _resources.Release(h.Reserved);
                    h.Reserved = ResourceAllocation.None;
                }
                else
                {
                    // The attempt still runs and may still be using what was reserved for it.
                    h.AbandonedLoad = abandoned;
                    _abandonedLoads.Add(h);
                }

                if (cancelled)
                {
                    Log.LoadCancelled(_logger, h.Id);
                    h.State = HarnessState.Unloaded;
                    record.Harnesses.Remove(h);
                    Publish(h.Id, ServableManagerState.End, null);
                }
                else if (abandoned is not null)
                {
                    Log.VersionLoadTimedOut(_logger, h.Id, timeout, attempts);
                    Fail(record, h, new ServableLoadException(h.Id, failure!.Message, failure));
                }
                else
                {
                    Log.VersionLoadFailed(_logger, h.Id, attempts, failure!);
                    Fail(record, h, new ServableLoadException(h.Id, $"Loading {h.Id} failed after {attempts} attempt(s); the last attempt failed with: {failure!.Message}", failure));
                }
            }
        }

        if (abandoned is not null)
        {
            _ = FinishAbandonedLoadAsync(h, abandoned);
        }

        if (retireNow)
        {
            ReleaseRetired([h], null);
        }

        Wake();
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

        lock (_gate)
        {
            _resources.Release(h.Reserved);
            h.Reserved = ResourceAllocation.None;
            h.AbandonedLoad = null;
            _abandonedLoads.Remove(h);
        }

        Log.AbandonedLoadReturned(_logger, h.Id, attempt.Status == TaskStatus.RanToCompletion ? "succeeded; its servable was unloaded" : "failed");
        Wake();
    }

    private bool ShouldRetry(ServableId id, Exception error)
    {
        if (_shouldRetryLoad is null)
        {
            return true;
        }

        try
        {
            return _shouldRetryLoad(id, error);
        }
#pragma warning disable CA1031 // A throwing predicate means "do not retry".
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ManageStateFailed(_logger, ex);
            return false;
        }
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

    /// <summary>Takes an available version out of service (the caller republishes the map). Under the lock.</summary>
    private void BeginRetire(LoaderHarness h)
    {
        h.State = HarnessState.Quiescing;
        Publish(h.Id, ServableManagerState.Unloading, null);
        Log.VersionUnloading(_logger, h.Id);
    }

    /// <summary>Drops the serving map's reference of each retired version; those with no handles start unloading now. Outside the lock.</summary>
    private void ReleaseRetired(List<LoaderHarness>? retired, List<Task>? started)
    {
        foreach (LoaderHarness h in retired ?? [])
        {
            h.Loaded!.Retire();
            if (started is not null)
            {
                lock (_gate)
                {
                    if (h.UnloadTask is not null)
                    {
                        started.Add(h.UnloadTask);
                    }
                }
            }
        }
    }

    /// <summary>The last lease on a retired version ended (on any thread): queue its unload.</summary>
    private void OnDrained(LoaderHarness h)
    {
        lock (_gate)
        {
            h.State = HarnessState.Unloading;
            h.UnloadTask = _unloadWorkers.Enqueue(() => UnloadAsync(h));
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
        lock (_gate)
        {
            h.State = HarnessState.Unloaded;
            h.Loaded = null;
            _resources.Release(h.Reserved);
            h.Reserved = ResourceAllocation.None;
            if (_servables.TryGetValue(h.Id.Name, out ServableRecord? record))
            {
                record.Harnesses.Remove(h);
            }

            Publish(h.Id, ServableManagerState.End, error);
        }

        if (error is null)
        {
            Log.VersionUnloaded(_logger, h.Id, seconds * 1000);
        }

        Wake();
    }

    /// <summary>Puts a version in error; an un-aspired one leaves the manager. Under the lock.</summary>
    private void Fail(ServableRecord record, LoaderHarness h, ServableLoadException error)
    {
        h.State = HarnessState.Error;
        h.Error = error;
        if (!h.IsAspired)
        {
            record.Harnesses.Remove(h);
        }

        Publish(h.Id, ServableManagerState.End, error);
    }

    /// <summary>Builds and publishes a new snapshot of the available versions. Under the lock.</summary>
    private void PublishServingMap()
    {
        var servables = new List<ServingVersions>();
        if (!_disposed)
        {
            foreach ((string name, ServableRecord record) in _servables)
            {
                LoadedVersion[] available = record.Harnesses.Where(h => h.State == HarnessState.Available).Select(h => h.Loaded!).ToArray();
                if (available.Length > 0)
                {
                    servables.Add(new ServingVersions(name, available, record.Labels.ToFrozenDictionary(StringComparer.Ordinal)));
                }
            }
        }

        Volatile.Write(ref _servingMap, ServingMap.Create(servables));
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

    private ServableRecord GetOrAddRecord(string name)
    {
        if (!_servables.TryGetValue(name, out ServableRecord? record))
        {
            record = new ServableRecord();
            _servables.Add(name, record);
        }

        return record;
    }

    /// <summary>Every version the manager tracks now, by servable name, ascending (for health checks).</summary>
    internal Dictionary<string, VersionReport[]> DescribeVersions()
    {
        lock (_gate)
        {
            return _servables.ToDictionary(
                kv => kv.Key,
                kv => kv.Value.Harnesses.Select(h => new VersionReport(h.Id, h.State, h.IsAspired, h.Error)).ToArray(),
                StringComparer.Ordinal);
        }
    }

    /// <summary>Kept out of line so that the inlined hot path stays small.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowNotAvailable(in ServableRequest request) =>
        throw new ServableNotAvailableException(request, DescribeUnavailable(request));

    private string DescribeUnavailable(in ServableRequest request)
    {
        lock (_gate)
        {
            if (!_servables.TryGetValue(request.Name, out ServableRecord? record) || (record.Harnesses.Count == 0 && record.Pending is null))
            {
                string known = _servables.Count == 0 ? "none" : string.Join(", ", _servables.Keys.Order(StringComparer.Ordinal));
                return $"No servable named '{request.Name}' is loaded or loading (known servables: {known}). Check the name, and that a source aspires versions of it.";
            }

            string versions = record.Harnesses.Count == 0
                ? "none yet (versions were just requested)"
                : string.Join(", ", record.Harnesses.Select(h => h.Error is null ? $"{h.Id.Version} ({h.State})" : $"{h.Id.Version} (Error: {h.Error.Message})"));
            return request.Kind switch
            {
                ServableRequestKind.Specific => $"Version {request.Version} of servable '{request.Name}' is not available. Versions known: {versions}.",
                ServableRequestKind.Labeled when !record.Labels.TryGetValue(request.Label!, out long labeled) =>
                    $"Servable '{request.Name}' has no label '{request.Label}' (labels: {(record.Labels.Count == 0 ? "none" : string.Join(", ", record.Labels.Keys))}).",
                ServableRequestKind.Labeled =>
                    $"Label '{request.Label}' of servable '{request.Name}' points to version {record.Labels[request.Label!]}, which is not available. Versions known: {versions}.",
                _ => $"Servable '{request.Name}' has no available version yet. Versions known: {versions}.",
            };
        }
    }

    private static string DescribeVersions(IEnumerable<long> versions)
    {
        string list = string.Join(", ", versions.Order().Select(v => v.ToString(CultureInfo.InvariantCulture)));
        return list.Length == 0 ? "(none)" : list;
    }

    /// <summary>What the manager knows of one servable name. Under the lock.</summary>
    private sealed class ServableRecord
    {
        /// <summary>Ascending by version.</summary>
        public List<LoaderHarness> Harnesses { get; } = [];

        public Dictionary<string, long> Labels { get; } = new(StringComparer.Ordinal);

        /// <summary>The latest aspired set not yet applied.</summary>
        public ServableData<Loader>[]? Pending { get; set; }

        public LoaderHarness? Find(long version) => Harnesses.Find(h => h.Id.Version == version);

        public void Add(LoaderHarness h)
        {
            int at = Harnesses.FindIndex(x => x.Id.Version > h.Id.Version);
            Harnesses.Insert(at < 0 ? Harnesses.Count : at, h);
        }
    }

    private sealed class Unsubscriber(AspiredVersionsManager manager, IObserver<ServableState> observer) : IDisposable
    {
        public void Dispose()
        {
            lock (manager._gate)
            {
                manager._observers = [.. manager._observers.Where(o => !ReferenceEquals(o, observer))];
            }
        }
    }
}
