namespace Servables.Testing;

/// <summary>
/// Drives an <see cref="AspiredVersionsManager"/> by hand: no background loop, a fake clock, a
/// monitor, and helpers to aspire fake versions and to run the state loop until nothing changes.
/// </summary>
public sealed class ManagerDriver : IAsyncDisposable
{
    private readonly Dictionary<ServableId, FakeLoader> _loaders = [];
    private int _events;

    public ManagerDriver(Action<AspiredVersionsManagerOptions>? configure = null)
    {
        var options = new AspiredVersionsManagerOptions
        {
            ManageStateInterval = Timeout.InfiniteTimeSpan,
            TimeProvider = Time,
            LoadRetryInterval = TimeSpan.FromSeconds(1),
        };
        configure?.Invoke(options);
        Manager = new AspiredVersionsManager(options);
        Monitor = new ServableStateMonitor(Manager, new ServableStateMonitorOptions { TimeProvider = Time });
        Monitor.StateChanged += (_, _) => Interlocked.Increment(ref _events);
    }

    public ObservedTimeProvider Time { get; } = new();

    public AspiredVersionsManager Manager { get; }

    public ServableStateMonitor Monitor { get; }

    /// <summary>Every loader this driver created, by id.</summary>
    public IReadOnlyDictionary<ServableId, FakeLoader> Loaders => _loaders;

    /// <summary>Aspires exactly <paramref name="versions"/> of <paramref name="name"/>, each with a new fake loader (configured by <paramref name="setup"/>).</summary>
    public IReadOnlyList<FakeLoader> Aspire(string name, long[] versions, Func<FakeLoader, FakeLoader>? setup = null, ResourceAllocation? estimate = null)
    {
        var loaders = versions.Select(v =>
        {
            var loader = new FakeLoader(new ServableId(name, v), estimate);
            return setup is null ? loader : setup(loader);
        }).ToList();
        foreach (FakeLoader loader in loaders)
        {
            _loaders[loader.Id] = loader;
        }

        Manager.SetAspiredVersions(name, loaders.Select(l => ServableData.Create<Loader>(l.Id, l)).ToList());
        return loaders;
    }

    /// <summary>One turn of the state loop; completes when the actions it started finished.</summary>
    public Task TurnAsync() => Manager.ManageStateAsync().WaitAsync(TimeSpan.FromSeconds(30));

    /// <summary>Turns the state loop until a turn publishes no state change (at most <paramref name="maxTurns"/>).</summary>
    public async Task SettleAsync(int maxTurns = 50)
    {
        for (int i = 0; i < maxTurns; i++)
        {
            int before = Volatile.Read(ref _events);
            await TurnAsync().ConfigureAwait(false);
            if (Volatile.Read(ref _events) == before)
            {
                return;
            }
        }

        throw new InvalidOperationException($"The manager did not settle within {maxTurns} turns.");
    }

    public ServableState? State(string name, long version) => Monitor.GetState(new ServableId(name, version));

    public ServableManagerState? StateOf(string name, long version) => State(name, version)?.State;

    public IReadOnlyList<string> Violations => _loaders.Values.SelectMany(l => l.Violations).ToList();

    public async ValueTask DisposeAsync()
    {
        await Manager.DisposeAsync().ConfigureAwait(false);
        Monitor.Dispose();
    }
}
