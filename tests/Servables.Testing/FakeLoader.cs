namespace Servables.Testing;

/// <summary>
/// A controllable <see cref="Loader"/>: fails a number of loads, blocks loads or unloads until
/// released, reports a resource estimate, and records contract violations (a second load, a load
/// and unload at once, an unload without a load).
/// </summary>
public sealed class FakeLoader : Loader
{
    private readonly object _gate = new();
    private readonly List<string> _violations = [];
    private TaskCompletionSource? _loadGate;
    private TaskCompletionSource? _unloadGate;
    private FakeServable? _servable;
    private int _failuresLeft;
    private int _loadCalls;
    private int _unloadCalls;
    private int _active;
    private bool _loaded;

    public FakeLoader(ServableId id, ResourceAllocation? estimate = null, ResourceAllocation? estimateAfterLoad = null)
    {
        Id = id;
        Estimate = estimate ?? ResourceAllocation.None;
        EstimateAfterLoad = estimateAfterLoad;
    }

    public FakeLoader(string name, long version, ResourceAllocation? estimate = null)
        : this(new ServableId(name, version), estimate)
    {
    }

    public ServableId Id { get; }

    public ResourceAllocation Estimate { get; }

    public ResourceAllocation? EstimateAfterLoad { get; }

    /// <summary>The exception failed loads throw.</summary>
    public Exception Failure { get; set; } = new IOException("Simulated load failure.");

    public int LoadCalls => Volatile.Read(ref _loadCalls);

    public int UnloadCalls => Volatile.Read(ref _unloadCalls);

    /// <summary>The servable the last successful load created (kept after unload, to check disposal).</summary>
    public FakeServable? Created { get; private set; }

    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_gate)
            {
                return [.. _violations];
            }
        }
    }

    public override object? Servable => _servable;

    /// <summary>Makes the next <paramref name="count"/> loads throw <see cref="Failure"/>.</summary>
    public FakeLoader FailLoads(int count)
    {
        _failuresLeft = count;
        return this;
    }

    /// <summary>Makes loads wait until <see cref="ReleaseLoad"/>.</summary>
    public FakeLoader BlockLoads()
    {
        _loadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return this;
    }

    public void ReleaseLoad() => _loadGate?.TrySetResult();

    /// <summary>Makes unloads wait until <see cref="ReleaseUnload"/>.</summary>
    public FakeLoader BlockUnloads()
    {
        _unloadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return this;
    }

    public void ReleaseUnload() => _unloadGate?.TrySetResult();

    public override ResourceAllocation EstimateResources() => _loaded && EstimateAfterLoad is not null ? EstimateAfterLoad : Estimate;

    public override async Task LoadAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _loadCalls);
        Enter("load");
        try
        {
            if (_loaded)
            {
                Violate("loaded twice");
            }

            if (_loadGate is not null)
            {
                await _loadGate.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (_failuresLeft > 0)
            {
                _failuresLeft--;
                throw Failure;
            }

            _servable = Created = new FakeServable(Id);
            _loaded = true;
        }
        finally
        {
            Exit();
        }
    }

    public override async Task UnloadAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _unloadCalls);
        Enter("unload");
        try
        {
            if (!_loaded)
            {
                Violate("unloaded without a successful load");
            }

            if (_unloadGate is not null)
            {
                await _unloadGate.Task.ConfigureAwait(false);
            }

            FakeServable? servable = _servable;
            _servable = null;
            servable?.Dispose();
        }
        finally
        {
            Exit();
        }
    }

    private void Enter(string what)
    {
        if (Interlocked.Increment(ref _active) != 1)
        {
            Violate($"{what} ran concurrently with another load or unload");
        }
    }

    private void Exit() => Interlocked.Decrement(ref _active);

    private void Violate(string what)
    {
        lock (_gate)
        {
            _violations.Add($"{Id}: {what}");
        }
    }
}
