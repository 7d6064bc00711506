using Servables.Testing;

namespace Servables.Core.Tests.StateMonitor;

public sealed class ServableStateMonitorTests
{
    [Fact]
    public async Task GetState_TracksLifecycleInOrder()
    {
        await using var driver = new ManagerDriver();
        var changes = new List<ServableState>();
        using IDisposable subscription = driver.Monitor.Subscribe(new Recorder(changes));
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        driver.Aspire("m", []);
        await driver.SettleAsync();
        await Eventually.WaitUntilAsync(() => driver.StateOf("m", 1) == ServableManagerState.End);

        Assert.Equal(
            [ServableManagerState.Start, ServableManagerState.Loading, ServableManagerState.Available, ServableManagerState.Unloading, ServableManagerState.End],
            changes.Select(c => c.State));
        Assert.Equal(changes, driver.Monitor.GetEventLog());
        Assert.Equal(ServableManagerState.End, driver.Monitor.GetVersionStates("m")[1].State);
        Assert.Empty(driver.Monitor.GetAvailableStates());
        Assert.Equal(driver.Time.GetUtcNow(), changes[0].Timestamp);
    }

    [Fact]
    public async Task EventLog_IsBounded_KeepsNewest()
    {
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        using var monitor = new ServableStateMonitor(manager, new ServableStateMonitorOptions { MaxLogEvents = 4 });
        var changes = new List<ServableState>();
        using IDisposable subscription = monitor.Subscribe(new Recorder(changes));
        for (int v = 1; v <= 3; v++)
        {
            var loader = new FakeLoader("m", v);
            manager.SetAspiredVersions("m", [ServableData.Create<Loader>(loader.Id, loader)]);
            await manager.ManageStateAsync();
            await manager.ManageStateAsync();
        }

        await Eventually.WaitUntilAsync(() => monitor.GetState(new ServableId("m", 2))?.State == ServableManagerState.End);

        IReadOnlyList<ServableState> log = monitor.GetEventLog();
        Assert.True(changes.Count > 4);
        lock (changes)
        {
            Assert.Equal(changes.TakeLast(4), log);
        }
    }

    [Fact]
    public async Task WaitUntilAvailableAsync_CompletesWhenAllAvailable()
    {
        await using var driver = new ManagerDriver();
        Task<ServableAvailability> wait = driver.Monitor.WaitUntilAvailableAsync([ServableRequest.Latest("a"), ServableRequest.Specific("b", 2)], TimeSpan.FromMinutes(1));
        driver.Aspire("a", [1]);
        await driver.SettleAsync();
        Assert.False(wait.IsCompleted);
        driver.Aspire("b", [2]);
        await driver.SettleAsync();

        ServableAvailability result = await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(result.IsAvailable);
        Assert.Equal(ServableManagerState.Available, result.States[ServableRequest.Specific("b", 2)]!.State);
    }

    [Fact]
    public void ThousandsOfVersionsEnd_KeepsOnlyTheLatestEnded_AndEveryVersionThatHasNotEnded()
    {
        var source = new ManualStateSource();
        using var monitor = new ServableStateMonitor(source, new ServableStateMonitorOptions { MaxEndedVersions = 100 });
        var now = DateTimeOffset.UnixEpoch;
        source.Publish(new ServableState(new ServableId("live", 1), ServableManagerState.Available, null, now));
        for (int v = 1; v <= 5000; v++)
        {
            var id = new ServableId($"m{v % 7}", v);
            source.Publish(new ServableState(id, ServableManagerState.Start, null, now));
            source.Publish(new ServableState(id, ServableManagerState.End, v % 2 == 0 ? new IOException("failed") : null, now));
        }

        IReadOnlyDictionary<string, IReadOnlyDictionary<long, ServableState>> all = monitor.GetAllStates();
        Assert.Equal(101, all.Values.Sum(v => v.Count));
        Assert.Equal(ServableManagerState.Available, monitor.GetState(new ServableId("live", 1))!.State);
        Assert.NotNull(monitor.GetState(new ServableId("m2", 5000)));
        Assert.NotNull(monitor.GetState(new ServableId($"m{4901 % 7}", 4901)));
        Assert.Null(monitor.GetState(new ServableId($"m{4900 % 7}", 4900)));
    }

    [Fact]
    public void VersionThatEndsAndComesBackRepeatedly_StaysBounded_AndIsForgottenOnlyOnceEnded()
    {
        var source = new ManualStateSource();
        using var monitor = new ServableStateMonitor(source, new ServableStateMonitorOptions { MaxEndedVersions = 0 });
        var id = new ServableId("m", 1);
        for (int i = 0; i < 10_000; i++)
        {
            source.Publish(new ServableState(id, ServableManagerState.Loading, null, DateTimeOffset.UnixEpoch));
            Assert.NotNull(monitor.GetState(id));
            source.Publish(new ServableState(id, ServableManagerState.End, null, DateTimeOffset.UnixEpoch));
            Assert.Null(monitor.GetState(id));
        }

        Assert.Empty(monitor.GetAllStates());
    }

    private sealed class ManualStateSource : IObservable<ServableState>
    {
        private readonly List<IObserver<ServableState>> _observers = [];

        public void Publish(ServableState state) => _observers.ForEach(o => o.OnNext(state));

        public IDisposable Subscribe(IObserver<ServableState> observer)
        {
            _observers.Add(observer);
            return new Unsubscriber(() => _observers.Remove(observer));
        }

        private sealed class Unsubscriber(Action dispose) : IDisposable
        {
            public void Dispose() => dispose();
        }
    }

    [Fact]
    public async Task WaitUntilAvailableAsync_Timeout_ReturnsNotAvailableWithStates()
    {
        await using var driver = new ManagerDriver();
        FakeLoader blocked = driver.Aspire("m", [1], l => l.BlockLoads())[0];
        Task turn = driver.TurnAsync();
        Task<ServableAvailability> wait = driver.Monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", 1), ServableRequest.Latest("ghost")], TimeSpan.FromSeconds(5));
        await driver.Time.WaitForTimersAsync(2); // the load's timeout and the wait's
        driver.Time.Advance(TimeSpan.FromSeconds(5));

        ServableAvailability result = await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(result.IsAvailable);
        Assert.Equal(ServableManagerState.Loading, result.States[ServableRequest.Specific("m", 1)]!.State);
        Assert.Null(result.States[ServableRequest.Latest("ghost")]);
        Assert.Contains("ghost (latest): unknown to the manager", result.DescribeUnavailable(), StringComparison.Ordinal);
        blocked.ReleaseLoad();
        await turn;
    }

    [Fact]
    public async Task WaitUntilAvailableAsync_SpecificVersionFails_ReturnsEarly()
    {
        await using var driver = new ManagerDriver(o => o.MaxLoadRetries = 0);
        Task<ServableAvailability> wait = driver.Monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", 1)], Timeout.InfiniteTimeSpan);
        driver.Aspire("m", [1], l => l.FailLoads(1));
        await driver.SettleAsync();

        ServableAvailability result = await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(result.IsAvailable);
        Assert.True(result.States[ServableRequest.Specific("m", 1)]!.IsError);
    }

    [Fact]
    public async Task WaitUntilAvailableAsync_Cancelled_Throws()
    {
        await using var driver = new ManagerDriver();
        using var cts = new CancellationTokenSource();
        Task<ServableAvailability> wait = driver.Monitor.WaitUntilAvailableAsync([ServableRequest.Latest("m")], Timeout.InfiniteTimeSpan, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
    }

    [Fact]
    public async Task WaitUntilAvailableAsync_Labeled_Throws()
    {
        await using var driver = new ManagerDriver();
        await Assert.ThrowsAsync<ArgumentException>(() => driver.Monitor.WaitUntilAvailableAsync([ServableRequest.Labeled("m", "stable")], TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task StateChanged_RaisedForEveryChange()
    {
        await using var driver = new ManagerDriver();
        int raised = 0;
        driver.Monitor.StateChanged += (_, _) => raised++;
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        Assert.Equal(3, raised);
    }

    private sealed class Recorder(List<ServableState> changes) : IObserver<ServableState>
    {
        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void OnNext(ServableState value)
        {
            lock (changes)
            {
                changes.Add(value);
            }
        }
    }
}
