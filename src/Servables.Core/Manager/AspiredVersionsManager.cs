using System.Diagnostics;
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
/// <para>
/// Inside, as in TensorFlow Serving, this class keeps the aspired sets and the policy step; a
/// <c>BasicManager</c> runs the loads and unloads, admits resources and builds the serving map; a
/// <c>LoaderHarness</c> carries each version through its states and retries its load.
/// </para>
/// <para>All public members are thread-safe.</para>
/// </remarks>
public sealed class AspiredVersionsManager : IServableManager, IAspiredVersionsTarget<Loader>, IObservable<ServableState>, IAsyncDisposable, IDisposable
{
    private readonly BasicManager _basic;
    private readonly Lock _gate; // _basic.Gate: one state lock for the aspired sets and the harnesses.
    private readonly CancellationTokenSource _stopping = new();
    private readonly AspiredVersionPolicy _policy;
    private readonly TimeSpan _manageStateInterval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CoreMetrics _metrics;
    private readonly Counter<long> _handleAcquisitions; // _metrics.HandleAcquisitions, one load closer to the hot path.
    private readonly Task? _loop;
    private ServingMap _servingMap = ServingMap.Empty; // Written by _basic under the lock; read by the hot path without it.
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _stopped;

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
        _manageStateInterval = options.ManageStateInterval;
        _time = options.TimeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _metrics = new CoreMetrics(meterFactory, () => Volatile.Read(ref _servingMap).Count);
        _handleAcquisitions = _metrics.HandleAcquisitions;
        _basic = new BasicManager(options, _logger, _metrics, map => Volatile.Write(ref _servingMap, map), Wake);
        _gate = _basic.Gate;
        if (_manageStateInterval != Timeout.InfiniteTimeSpan)
        {
            _loop = Task.Run(RunLoopAsync);
        }
    }

    /// <summary>The resources reserved now by versions that are loading, loaded or not yet unloaded.</summary>
    public ResourceAllocation ReservedResources => _basic.ReservedResources;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ServableHandle<T> GetServableHandle<T>(ServableRequest request)
        where T : class
    {
        return Acquire<T>(request, throwIfNotAvailable: true);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGetServableHandle<T>(ServableRequest request, out ServableHandle<T> handle)
        where T : class
    {
        handle = Acquire<T>(request, throwIfNotAvailable: false);
        return !handle.IsEmpty;
    }

    /// <summary>
    /// The handle path: a lease on the version <paramref name="request"/> resolves to now; when none is available, an
    /// empty handle or (<paramref name="throwIfNotAvailable"/>) <see cref="ServableNotAvailableException"/>.
    /// </summary>
    /// <remarks>
    /// Returns the handle rather than filling an out parameter, and throws where the request is still in use, so that
    /// the inlined path keeps the handle in registers and the request is dead once its version is found.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ServableHandle<T> Acquire<T>(ServableRequest request, bool throwIfNotAvailable)
        where T : class
    {
        LoadedVersion? version;
        ServableHandle<T> handle;
        while (true)
        {
            version = Volatile.Read(ref _servingMap).Find(request);
            if (version is null)
            {
                if (throwIfNotAvailable)
                {
                    ThrowNotAvailable(request.Name, request.Kind, request.Version, request.Label); // its parts: the request itself need not be kept on the stack
                }

                return default;
            }

            long token = version.TryAcquireSlot();
            if (LoadedVersion.IsSlotLease(token))
            {
                handle = Lease<T>(version, version, token);
                break;
            }

            if (token == LoadedVersion.SlotsFull && !(handle = LeaseOverflow<T>(version)).IsEmpty)
            {
                break;
            }

            // Retired between the read and the acquire: the next snapshot no longer has it.
        }

        if (_handleAcquisitions.Enabled)
        {
            _handleAcquisitions.Add(1, new KeyValuePair<string, object?>("servable", version.Id.Name));
        }

        return handle;
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
            ObjectDisposedException.ThrowIf(_basic.IsStopping, this);
            _basic.GetOrAddRecord(servableName).Pending = copy;
            AssertInvariants();
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
            ObjectDisposedException.ThrowIf(_basic.IsStopping, this);
            if (!_basic.Records.TryGetValue(servableName, out ServableRecord? record)
                || !record.Harnesses.Any(h => h.Id.Version == version && h.State == HarnessState.Available))
            {
                throw new InvalidOperationException(
                    $"Cannot point label '{label}' of servable '{servableName}' at version {version}: that version is not available. Wait until it is (see ServableStateMonitor.WaitUntilAvailableAsync), then set the label.");
            }

            record.Labels[label] = version;
            _basic.PublishServingMap();
            AssertInvariants();
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
            if (_basic.Records.TryGetValue(servableName, out ServableRecord? record) && record.Labels.Remove(label))
            {
                _basic.PublishServingMap();
                AssertInvariants();
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
        ObjectDisposedException.ThrowIf(_basic.IsStopping, this);
        return RunIteration().WaitAsync(cancellationToken);
    }

    /// <summary>Subscribes to every state change of every version, in order.</summary>
    /// <returns>Disposing it unsubscribes.</returns>
    public IDisposable Subscribe(IObserver<ServableState> observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        return _basic.Subscribe(observer);
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
                _basic.BeginStop();
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

    /// <summary>
    /// Stops the manager as <see cref="DisposeAsync"/> does, blocking the calling thread until it has (at most
    /// <see cref="AspiredVersionsManagerOptions.StopTimeout"/>): for a container disposed synchronously
    /// (<c>ServiceProvider.Dispose</c>). Prefer <see cref="DisposeAsync"/> (<c>await using</c>) elsewhere.
    /// </summary>
    /// <remarks>
    /// It blocks because a synchronous dispose has no other way to finish the stop before it returns (the container throws
    /// for types that offer only <see cref="DisposeAsync"/>). The stop needs no synchronization context: it awaits with
    /// <c>ConfigureAwait(false)</c> throughout, so blocking on it does not deadlock a UI thread.
    /// </remarks>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Every version the manager tracks now, by servable name, ascending (for health checks).</summary>
    internal Dictionary<string, VersionReport[]> DescribeVersions() => _basic.DescribeVersions();

    private async Task RunStopAsync(TaskCompletionSource stopped, CancellationToken cancellationToken)
    {
        try
        {
            await _basic.StopAsync(StopStateLoopAsync, cancellationToken).ConfigureAwait(false);
            _metrics.Dispose();
            stopped.TrySetResult();
        }
#pragma warning disable CA1031 // Reported to every caller of StopAsync and DisposeAsync.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            stopped.TrySetException(ex);
        }
    }

    /// <summary>Ends the state loop and drops the aspired sets not yet applied; the first step of the bounded stop.</summary>
    private async Task StopStateLoopAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        lock (_gate)
        {
            foreach (ServableRecord record in _basic.Records.Values)
            {
                record.Pending = null;
            }

            AssertInvariants();
        }
    }

    /// <summary>Every slot of <paramref name="version"/> is held: a lease of its own (rare, so kept off the handle path); empty when the version was retired.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ServableHandle<T> LeaseOverflow<T>(LoadedVersion version)
        where T : class =>
        version.TryAcquireOverflow(out UntypedServableHandle lease, out long token) ? Lease<T>(version, lease, token) : default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ServableHandle<T> Lease<T>(LoadedVersion version, UntypedServableHandle lease, long token)
        where T : class
    {
        if (version.Servable is not T typed)
        {
            lease.TryEndLease(token);
            throw ServableHandle<T>.TypeMismatch(version.Id, version.Servable);
        }

        return new ServableHandle<T>(lease, typed, token);
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

    /// <summary>One turn: per servable, apply its pending aspired set, then start the policy's next action.</summary>
    private Task RunIteration()
    {
        List<LoaderHarness>? retire = null;
        List<CancellationTokenSource>? cancels = null;
        var started = new List<Task>();
        lock (_gate)
        {
            if (_basic.IsStopping)
            {
                return Task.CompletedTask;
            }

            bool servingChanged = false;
            List<string>? emptyRecords = null;
            foreach ((string name, ServableRecord record) in _basic.Records)
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
                    else if (_basic.TryStartLoad(h) is { } load)
                    {
                        started.Add(load);
                    }
                }
                else if (h is null || h.State != HarnessState.Available || h.IsAspired)
                {
                    Log.PolicyActionIgnored(_logger, TypeNames.Readable(_policy.GetType()), next.Kind, next.Id, h is null ? "unknown" : h.State.ToString());
                }
                else
                {
                    _basic.BeginRetire(h, HarnessState.Available);
                    (retire ??= []).Add(h);
                    servingChanged = true;
                }
            }

            foreach (string name in emptyRecords ?? [])
            {
                _basic.Records.Remove(name);
            }

            if (servingChanged)
            {
                _basic.PublishServingMap();
            }

            AssertInvariants();
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

        _basic.ReleaseRetired(retire, started);
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
                case HarnessState.New or HarnessState.Error:
                    _basic.StopManaging(record, h);
                    break;
                case HarnessState.Loading:
                    (cancels ??= []).Add(h.Cancellation);
                    break;
            }
        }

        foreach (ServableData<Loader> item in requested.Values)
        {
            _basic.StartManaging(record, item);
        }
    }

    /// <summary>Checks, in debug builds, the aspired-set invariants and then the harnesses' (see <see cref="BasicManager.AssertInvariants"/>). Under the lock, at the end of each section that changes state.</summary>
    [Conditional("DEBUG")]
    private void AssertInvariants()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread, "AssertInvariants runs under the state lock.");
        foreach ((string name, ServableRecord record) in _basic.Records)
        {
            Debug.Assert(record.Pending is null || !_basic.IsStopping, $"'{name}' has a pending aspired set after the stop began.");
            Debug.Assert(record.Harnesses.All(h => h.Loader is not null || h.State == HarnessState.Error), $"'{name}' has a harness without a loader that is not in error.");
        }

        _basic.AssertInvariants();
    }

    /// <summary>Kept out of line so that the inlined hot path stays small.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowNotAvailable(string name, ServableRequestKind kind, long version, string? label)
    {
        var request = new ServableRequest(name, kind, version, label);
        throw new ServableNotAvailableException(request, DescribeUnavailable(request));
    }

    private string DescribeUnavailable(in ServableRequest request)
    {
        lock (_gate)
        {
            Dictionary<string, ServableRecord> records = _basic.Records;
            if (!records.TryGetValue(request.Name, out ServableRecord? record) || (record.Harnesses.Count == 0 && record.Pending is null))
            {
                string known = records.Count == 0 ? "none" : string.Join(", ", records.Keys.Order(StringComparer.Ordinal));
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
}
