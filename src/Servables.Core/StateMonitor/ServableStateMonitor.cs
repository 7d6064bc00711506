namespace Servables;

/// <summary>Tracks the state of every servable version a manager publishes, keeps a bounded event log, and lets callers wait for versions to become available.</summary>
/// <remarks>
/// <para>
/// Subscribe it to a manager (<see cref="AspiredVersionsManager"/> is an <see cref="IObservable{T}"/>
/// of <see cref="ServableState"/>) right after creating the manager, so that it sees every change.
/// It keeps the latest state of every version that has not ended, and of the last
/// <see cref="ServableStateMonitorOptions.MaxEndedVersions"/> versions that ended (a version that
/// left the manager stays in <see cref="ServableManagerState.End"/>, with its error if it failed,
/// until that many more have ended after it).
/// </para>
/// <para>
/// It re-publishes each change to its own subscribers and <see cref="StateChanged"/> handlers,
/// synchronously and in order, on the manager's thread: keep them short.
/// </para>
/// <para>All members are thread-safe.</para>
/// </remarks>
public sealed class ServableStateMonitor : IObservable<ServableState>, IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SortedDictionary<long, ServableState>> _states = new(StringComparer.Ordinal);
    private readonly Queue<ServableState> _log = new();
    private readonly List<Waiter> _waiters = [];
    private readonly Dictionary<ServableId, long> _endedAt = [];
    private readonly Queue<(ServableId Id, long Sequence)> _endedOrder = new();
    private readonly int _maxLogEvents;
    private readonly int _maxEndedVersions;
    private long _endSequence;
    private readonly TimeProvider _time;
    private readonly IDisposable _subscription;
    private IObserver<ServableState>[] _observers = [];

    /// <summary>Creates a monitor of the changes <paramref name="source"/> publishes.</summary>
    /// <param name="source">Usually the <see cref="AspiredVersionsManager"/>.</param>
    /// <param name="options">The options; null for the defaults.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public ServableStateMonitor(IObservable<ServableState> source, ServableStateMonitorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new ServableStateMonitorOptions();
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid ServableStateMonitorOptions: " + string.Join(" ", errors), nameof(options));
        }

        _maxLogEvents = options.MaxLogEvents;
        _maxEndedVersions = options.MaxEndedVersions;
        _time = options.TimeProvider;
        _subscription = source.Subscribe(new SourceObserver(this));
    }

    /// <summary>Raised for every state change, in order, on the publishing thread.</summary>
    public event EventHandler<ServableState>? StateChanged;

    /// <summary>The latest state of <paramref name="id"/>, or null if it was never seen.</summary>
    public ServableState? GetState(ServableId id)
    {
        lock (_gate)
        {
            return _states.TryGetValue(id.Name, out var versions) && versions.TryGetValue(id.Version, out ServableState? state) ? state : null;
        }
    }

    /// <summary>The latest state of every version of <paramref name="servableName"/> the monitor keeps (see <see cref="ServableStateMonitorOptions.MaxEndedVersions"/>), by version.</summary>
    public IReadOnlyDictionary<long, ServableState> GetVersionStates(string servableName)
    {
        ArgumentException.ThrowIfNullOrEmpty(servableName);
        lock (_gate)
        {
            return _states.TryGetValue(servableName, out var versions) ? new Dictionary<long, ServableState>(versions) : new Dictionary<long, ServableState>();
        }
    }

    /// <summary>The latest state of every version of every servable the monitor keeps, by name and version.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<long, ServableState>> GetAllStates()
    {
        lock (_gate)
        {
            return _states.ToDictionary(kv => kv.Key, kv => (IReadOnlyDictionary<long, ServableState>)new Dictionary<long, ServableState>(kv.Value), StringComparer.Ordinal);
        }
    }

    /// <summary>The versions that are available now, by id.</summary>
    public IReadOnlyList<ServableState> GetAvailableStates()
    {
        lock (_gate)
        {
            return _states.Values.SelectMany(v => v.Values).Where(s => s.State == ServableManagerState.Available).OrderBy(s => s.Id).ToList();
        }
    }

    /// <summary>The most recent state changes, oldest first, at most <see cref="ServableStateMonitorOptions.MaxLogEvents"/>.</summary>
    public IReadOnlyList<ServableState> GetEventLog()
    {
        lock (_gate)
        {
            return [.. _log];
        }
    }

    /// <summary>
    /// Waits until every request resolves to an available version, until the timeout, or until a
    /// specific version that was asked for fails (ends in error) so that waiting longer is pointless.
    /// </summary>
    /// <param name="requests">Latest, Earliest or Specific requests. Latest and Earliest are satisfied by any available version of the name.</param>
    /// <param name="timeout">How long to wait, on the monitor's clock; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</param>
    /// <param name="cancellationToken">Stops waiting with an <see cref="OperationCanceledException"/>.</param>
    /// <returns>Whether all are available, and the state each request was last seen in.</returns>
    /// <exception cref="ArgumentException">A request is <see cref="ServableRequestKind.Labeled"/>: the monitor does not know labels; wait for the version number.</exception>
    public async Task<ServableAvailability> WaitUntilAvailableAsync(IEnumerable<ServableRequest> requests, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ServableRequest[] wanted = [.. requests.Distinct()];
        if (wanted.Any(r => r.Kind == ServableRequestKind.Labeled))
        {
            throw new ArgumentException("The monitor cannot resolve labels; wait for the labeled version's number with ServableRequest.Specific.", nameof(requests));
        }

        if (timeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var waiter = new Waiter(wanted);
        lock (_gate)
        {
            if (Evaluate(waiter) is { } done)
            {
                return done;
            }

            _waiters.Add(waiter);
        }

        try
        {
            return await waiter.Completion.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_gate)
            {
                _waiters.Remove(waiter);
                return Snapshot(waiter, isAvailable: false);
            }
        }
        catch (OperationCanceledException)
        {
            lock (_gate)
            {
                _waiters.Remove(waiter);
            }

            throw;
        }
    }

    /// <summary>Subscribes to every state change the monitor sees, in order.</summary>
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

    /// <summary>Stops listening to the source; states seen so far stay readable.</summary>
    public void Dispose() => _subscription.Dispose();

    private void OnNext(ServableState change)
    {
        List<(Waiter Waiter, ServableAvailability Result)>? completed = null;
        IObserver<ServableState>[] observers;
        lock (_gate)
        {
            if (!_states.TryGetValue(change.Id.Name, out var versions))
            {
                versions = [];
                _states.Add(change.Id.Name, versions);
            }

            versions[change.Id.Version] = change;
            if (change.State == ServableManagerState.End)
            {
                _endedAt[change.Id] = ++_endSequence;
                _endedOrder.Enqueue((change.Id, _endSequence));
            }
            else
            {
                _endedAt.Remove(change.Id);
            }

            if (_maxLogEvents > 0)
            {
                if (_log.Count == _maxLogEvents)
                {
                    _log.Dequeue();
                }

                _log.Enqueue(change);
            }

            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (Evaluate(_waiters[i]) is { } result)
                {
                    (completed ??= []).Add((_waiters[i], result));
                    _waiters.RemoveAt(i);
                }
            }

            ForgetEndedBeyondLimit();
            observers = _observers;
        }

        // Waiters run their continuations asynchronously; complete them outside the lock.
        foreach ((Waiter waiter, ServableAvailability result) in completed ?? [])
        {
            waiter.Completion.TrySetResult(result);
        }

        foreach (IObserver<ServableState> observer in observers)
        {
            observer.OnNext(change);
        }

        StateChanged?.Invoke(this, change);
    }

    /// <summary>Forgets the versions that ended first while more than the limit have ended. Under the lock.</summary>
    private void ForgetEndedBeyondLimit()
    {
        while (_endedAt.Count > _maxEndedVersions && _endedOrder.TryDequeue(out (ServableId Id, long Sequence) oldest))
        {
            // Entries of versions that ended again later, or came back, are stale: skip them.
            if (_endedAt.TryGetValue(oldest.Id, out long sequence) && sequence == oldest.Sequence)
            {
                _endedAt.Remove(oldest.Id);
                SortedDictionary<long, ServableState> versions = _states[oldest.Id.Name];
                versions.Remove(oldest.Id.Version);
                if (versions.Count == 0)
                {
                    _states.Remove(oldest.Id.Name);
                }
            }
        }

        // Stale entries pile up when versions end and come back again and again: drop them now and then.
        if (_endedOrder.Count > (2 * _endedAt.Count) + 64)
        {
            var live = _endedOrder.Where(e => _endedAt.TryGetValue(e.Id, out long sequence) && sequence == e.Sequence).ToList();
            _endedOrder.Clear();
            foreach ((ServableId Id, long Sequence) entry in live)
            {
                _endedOrder.Enqueue(entry);
            }
        }
    }

    /// <summary>The result if the waiter is done (all available, or a specific version failed); else null. Under the lock.</summary>
    private ServableAvailability? Evaluate(Waiter waiter)
    {
        bool allAvailable = true;
        foreach (ServableRequest request in waiter.Requests)
        {
            ServableState? state = Resolve(request);
            if (state is { State: ServableManagerState.Available })
            {
                continue;
            }

            if (request.Kind == ServableRequestKind.Specific && state is { State: ServableManagerState.End, IsError: true })
            {
                return Snapshot(waiter, isAvailable: false);
            }

            allAvailable = false;
        }

        return allAvailable ? Snapshot(waiter, isAvailable: true) : null;
    }

    private ServableAvailability Snapshot(Waiter waiter, bool isAvailable) =>
        new(isAvailable, waiter.Requests.ToDictionary(r => r, Resolve));

    /// <summary>The state that answers a request: the available version it would pick, else the most telling known state. Under the lock.</summary>
    private ServableState? Resolve(ServableRequest request)
    {
        if (!_states.TryGetValue(request.Name, out var versions) || versions.Count == 0)
        {
            return null;
        }

        if (request.Kind == ServableRequestKind.Specific)
        {
            return versions.TryGetValue(request.Version, out ServableState? specific) ? specific : null;
        }

        IEnumerable<ServableState> ordered = request.Kind == ServableRequestKind.Earliest ? versions.Values : versions.Values.Reverse();
        return ordered.FirstOrDefault(s => s.State == ServableManagerState.Available) ?? ordered.First();
    }

    private sealed class Waiter(ServableRequest[] requests)
    {
        public ServableRequest[] Requests { get; } = requests;

        public TaskCompletionSource<ServableAvailability> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class SourceObserver(ServableStateMonitor monitor) : IObserver<ServableState>
    {
        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void OnNext(ServableState value) => monitor.OnNext(value);
    }

    private sealed class Unsubscriber(ServableStateMonitor monitor, IObserver<ServableState> observer) : IDisposable
    {
        public void Dispose()
        {
            lock (monitor._gate)
            {
                monitor._observers = [.. monitor._observers.Where(o => !ReferenceEquals(o, observer))];
            }
        }
    }
}
