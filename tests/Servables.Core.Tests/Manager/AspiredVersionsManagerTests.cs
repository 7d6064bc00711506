using Servables.Testing;

namespace Servables.Core.Tests.Manager;

public sealed class AspiredVersionsManagerTests
{
    public static TheoryData<int, int> WorkerCounts => new() { { 1, 1 }, { 2, 1 }, { 4, 4 } };

    [Theory]
    [MemberData(nameof(WorkerCounts))]
    public async Task SetAspiredVersions_NewVersion_LoadsAndServes(int loadWorkers, int unloadWorkers)
    {
        await using var driver = new ManagerDriver(o => (o.LoadWorkerCount, o.UnloadWorkerCount) = (loadWorkers, unloadWorkers));
        driver.Aspire("m", [1]);
        Assert.False(driver.Manager.TryGetServableHandle<FakeServable>(ServableRequest.Latest("m"), out _));

        await driver.SettleAsync();

        using ServableHandle<FakeServable> handle = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        Assert.Equal(new ServableId("m", 1), handle.Id);
        Assert.Equal([new ServableId("m", 1)], driver.Manager.ListAvailableServableIds());
        Assert.Equal(
            [ServableManagerState.Start, ServableManagerState.Loading, ServableManagerState.Available],
            driver.Monitor.GetEventLog().Select(e => e.State));
        Assert.Empty(driver.Violations);
    }

    [Theory]
    [MemberData(nameof(WorkerCounts))]
    public async Task SetAspiredVersions_OmittedVersion_Unloads(int loadWorkers, int unloadWorkers)
    {
        await using var driver = new ManagerDriver(o => (o.LoadWorkerCount, o.UnloadWorkerCount) = (loadWorkers, unloadWorkers));
        driver.Aspire("m", [1, 2]);
        await driver.SettleAsync();
        Assert.Equal(2, driver.Manager.ListAvailableServableIds().Count);

        driver.Manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 2), new FakeLoader("m", 2))]);
        await driver.SettleAsync();

        Assert.Equal([new ServableId("m", 2)], driver.Manager.ListAvailableServableIds());
        Assert.Equal(ServableManagerState.End, driver.StateOf("m", 1));
        Assert.True(driver.Loaders[new ServableId("m", 1)].Created!.IsDisposed);
        Assert.Equal(1, driver.Loaders[new ServableId("m", 2)].LoadCalls); // the repeated v2 kept its first loader
        Assert.Empty(driver.Violations);
    }

    [Fact]
    public async Task ManageState_ManyTurns_NothingUnloadsSpontaneously()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1]);
        driver.Aspire("n", [5]);
        await driver.SettleAsync();

        for (int i = 0; i < 20; i++)
        {
            await driver.TurnAsync();
            driver.Time.Advance(TimeSpan.FromMinutes(10));
        }

        Assert.Equal([new ServableId("m", 1), new ServableId("n", 5)], driver.Manager.ListAvailableServableIds());
        Assert.All(driver.Loaders.Values, l => Assert.Equal(0, l.UnloadCalls));
    }

    [Fact]
    public async Task HeldHandle_DelaysOnlyItsOwnVersionsUnload()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1]);
        driver.Aspire("other", [1]);
        await driver.SettleAsync();
        ServableHandle<FakeServable> held = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));

        // v1 of "m" is un-aspired while held; "other" is swapped to v2 meanwhile.
        driver.Aspire("m", [2]);
        driver.Aspire("other", [2]);
        await driver.SettleAsync();

        Assert.Equal(ServableManagerState.Unloading, driver.StateOf("m", 1));
        Assert.False(held.Value.IsDisposed);
        Assert.Equal(0, driver.Loaders[new ServableId("m", 1)].UnloadCalls);
        Assert.Equal(ServableManagerState.End, driver.StateOf("other", 1)); // not blocked by the held handle
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 2));
        Assert.Equal(ServableManagerState.Available, driver.StateOf("other", 2));
        using (ServableHandle<FakeServable> latest = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m")))
        {
            Assert.Equal(2, latest.Id.Version); // new handles go to the new version
        }

        Assert.False(driver.Manager.TryGetServableHandle<FakeServable>(ServableRequest.Specific("m", 1), out _));

        held.Dispose();
        await Eventually.WaitUntilAsync(() => driver.StateOf("m", 1) == ServableManagerState.End);
        Assert.True(driver.Loaders[new ServableId("m", 1)].Created!.IsDisposed);
        Assert.Empty(driver.Violations);
    }

    [Fact]
    public async Task GetServableHandle_MoreHandlesThanLeaseSlots_AllServe_VersionUnloadsAfterTheLastIsDisposed()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1]);
        await driver.SettleAsync();

        // Past the version's lease slots, handles take overflow leases; both kinds keep the version loaded.
        var held = new List<ServableHandle<FakeServable>>();
        for (int i = 0; i < LoadedVersion.SlotCount + 10; i++)
        {
            held.Add(i % 2 == 0
                ? driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"))
                : driver.Manager.TryGetServableHandle(ServableRequest.Latest("m"), out ServableHandle<FakeServable> h) ? h : throw new InvalidOperationException("no handle"));
        }

        driver.Aspire("m", []);
        await driver.SettleAsync();
        Assert.All(held, h => Assert.False(h.Value.IsDisposed));
        Assert.Equal(ServableManagerState.Unloading, driver.StateOf("m", 1));
        foreach (ServableHandle<FakeServable> handle in held[..^1])
        {
            handle.Dispose();
        }

        await driver.SettleAsync();
        Assert.Equal(0, driver.Loaders[new ServableId("m", 1)].UnloadCalls); // one handle still holds it
        held[^1].Dispose();
        await Eventually.WaitUntilAsync(() => driver.StateOf("m", 1) == ServableManagerState.End);
        Assert.Empty(driver.Violations);
    }

    [Fact]
    public async Task GetServableHandle_NameBuiltAtRunTime_ResolvesLikeTheLiteral()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("model", [1]);
        await driver.SettleAsync();

        string built = string.Concat("mo", "del".AsSpan()); // equal, but not the string object the map holds
        Assert.False(ReferenceEquals(built, "model"));
        using ServableHandle<FakeServable> handle = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest(built));
        Assert.Equal(new ServableId("model", 1), handle.Id);
        Assert.False(driver.Manager.TryGetServableHandle(ServableRequest.Latest(string.Concat("mo", "dex".AsSpan())), out ServableHandle<FakeServable> none));
        Assert.Equal(default, none.Id);
    }

    [Fact]
    public async Task GetServableHandle_Requests_ResolveEarliestLatestSpecific()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [3, 7, 5]);
        await driver.SettleAsync();

        using ServableHandle<FakeServable> latest = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        using ServableHandle<FakeServable> earliest = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Earliest("m"));
        using ServableHandle<FakeServable> specific = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Specific("m", 5));
        Assert.Equal((7L, 3L, 5L), (latest.Id.Version, earliest.Id.Version, specific.Id.Version));
    }

    [Fact]
    public async Task GetServableHandle_Unavailable_ExplainsWhy()
    {
        await using var driver = new ManagerDriver(o => o.MaxLoadRetries = 0);
        driver.Aspire("m", [1]);
        driver.Aspire("m2", [1], l => l.FailLoads(1));
        await driver.SettleAsync();

        ServableNotAvailableException unknown = Assert.Throws<ServableNotAvailableException>(() => driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("nope")));
        Assert.Contains("No servable named 'nope'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("m, m2", unknown.Message, StringComparison.Ordinal);

        ServableNotAvailableException version = Assert.Throws<ServableNotAvailableException>(() => driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Specific("m", 9)));
        Assert.Contains("Version 9 of servable 'm' is not available", version.Message, StringComparison.Ordinal);
        Assert.Contains("1 (Available)", version.Message, StringComparison.Ordinal);
        Assert.Equal(ServableRequest.Specific("m", 9), version.Request);

        ServableNotAvailableException failed = Assert.Throws<ServableNotAvailableException>(() => driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m2")));
        Assert.Contains("Simulated load failure", failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Labels_PointAtAvailableVersions()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1, 2]);
        await driver.SettleAsync();

        driver.Manager.SetVersionLabel("m", "stable", 1);
        driver.Manager.SetVersionLabel("m", "canary", 2);
        using (ServableHandle<FakeServable> stable = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Labeled("m", "stable")))
        {
            Assert.Equal(1, stable.Id.Version);
        }

        Assert.Throws<InvalidOperationException>(() => driver.Manager.SetVersionLabel("m", "stable", 3));
        ServableNotAvailableException missing = Assert.Throws<ServableNotAvailableException>(() => driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Labeled("m", "beta")));
        Assert.Contains("no label 'beta'", missing.Message, StringComparison.Ordinal);

        driver.Aspire("m", [2]);
        await driver.SettleAsync();
        ServableNotAvailableException gone = Assert.Throws<ServableNotAvailableException>(() => driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Labeled("m", "stable")));
        Assert.Contains("points to version 1, which is not available", gone.Message, StringComparison.Ordinal);

        Assert.True(driver.Manager.RemoveVersionLabel("m", "canary"));
        Assert.False(driver.Manager.TryGetServableHandle<FakeServable>(ServableRequest.Labeled("m", "canary"), out _));
    }

    [Fact]
    public async Task GetAvailableServableHandles_LeasesEveryVersionOfTheType()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("a", [1, 2]);
        driver.Aspire("b", [1]);
        await driver.SettleAsync();

        IReadOnlyDictionary<ServableId, ServableHandle<FakeServable>> handles = driver.Manager.GetAvailableServableHandles<FakeServable>();
        Assert.Equal(3, handles.Count);
        Assert.Empty(driver.Manager.GetAvailableServableHandles<string>());

        driver.Aspire("a", []);
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Unloading, driver.StateOf("a", 1));
        foreach (ServableHandle<FakeServable> h in handles.Values)
        {
            h.Dispose();
        }

        await Eventually.WaitUntilAsync(() => driver.StateOf("a", 1) == ServableManagerState.End && driver.StateOf("a", 2) == ServableManagerState.End);
    }

    [Fact]
    public async Task FailedLoad_RetriedPerOptions_ThenError()
    {
        await using var driver = new ManagerDriver(o => (o.MaxLoadRetries, o.LoadRetryInterval) = (2, TimeSpan.FromSeconds(30)));
        FakeLoader loader = driver.Aspire("m", [1], l => l.FailLoads(10))[0];
        Task turn = driver.TurnAsync();

        for (int attempt = 1; attempt <= 2; attempt++)
        {
            await driver.Time.WaitForTimersAsync(2 * attempt); // each attempt's load timeout, then the retry wait
            Assert.Equal(attempt, loader.LoadCalls);
            Assert.False(turn.IsCompleted);
            driver.Time.Advance(TimeSpan.FromSeconds(30));
        }

        await turn;
        Assert.Equal(3, loader.LoadCalls);
        ServableState state = driver.State("m", 1)!;
        Assert.Equal(ServableManagerState.End, state.State);
        Assert.True(state.IsError);
        Assert.Contains("failed after 3 attempt(s)", state.Error!.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(state.Error.InnerException);

        // Staying aspired in error does not load it again.
        await driver.SettleAsync();
        Assert.Equal(3, loader.LoadCalls);
    }

    [Fact]
    public async Task FailedLoad_SucceedsOnRetry_BecomesAvailable()
    {
        await using var driver = new ManagerDriver(o => o.LoadRetryInterval = TimeSpan.Zero);
        FakeLoader loader = driver.Aspire("m", [1], l => l.FailLoads(2))[0];
        await driver.SettleAsync();
        Assert.Equal(3, loader.LoadCalls);
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 1));
    }

    [Fact]
    public async Task FailedLoad_PredicateSaysNo_NoRetry()
    {
        var seen = new List<(ServableId, Exception)>();
        await using var driver = new ManagerDriver(o => o.ShouldRetryLoad = (id, ex) =>
        {
            seen.Add((id, ex));
            return ex is not IOException;
        });
        FakeLoader loader = driver.Aspire("m", [1], l => l.FailLoads(5))[0];
        await driver.SettleAsync();
        Assert.Equal(1, loader.LoadCalls);
        Assert.Single(seen);
        Assert.Equal(new ServableId("m", 1), seen[0].Item1);
        Assert.True(driver.State("m", 1)!.IsError);
    }

    [Fact]
    public async Task UnAspire_DuringRetryWait_CancelsRetries()
    {
        await using var driver = new ManagerDriver(o => (o.MaxLoadRetries, o.LoadRetryInterval) = (5, TimeSpan.FromHours(1)));
        FakeLoader loader = driver.Aspire("m", [1], l => l.FailLoads(100))[0];
        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(2); // the attempt's load timeout, then the retry wait

        driver.Aspire("m", []);
        await driver.TurnAsync();
        await turn; // the retry wait ended without advancing the clock

        Assert.Equal(1, loader.LoadCalls);
        ServableState state = driver.State("m", 1)!;
        Assert.Equal(ServableManagerState.End, state.State);
        Assert.False(state.IsError);
        await driver.SettleAsync();
        Assert.Equal(1, loader.LoadCalls);
    }

    [Fact]
    public async Task FailedLoadOfNewVersion_NeverUnloadsServingVersion()
    {
        await using var driver = new ManagerDriver(o => o.MaxLoadRetries = 0);
        driver.Aspire("m", [1]);
        await driver.SettleAsync();

        driver.Aspire("m", [2], l => l.FailLoads(1));
        await driver.SettleAsync();

        Assert.True(driver.State("m", 2)!.IsError);
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 1));
        using ServableHandle<FakeServable> handle = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        Assert.Equal(1, handle.Id.Version);

        // A fixed v3 then replaces v1 as usual.
        driver.Aspire("m", [3]);
        await driver.SettleAsync();
        Assert.Equal([new ServableId("m", 3)], driver.Manager.ListAvailableServableIds());
    }

    [Fact]
    public async Task SourceError_PutsVersionInError_OthersUnaffected()
    {
        await using var driver = new ManagerDriver();
        var good = new FakeLoader("m", 1);
        driver.Manager.SetAspiredVersions("m",
        [
            ServableData.Create<Loader>(good.Id, good),
            ServableData.FromError<Loader>(new ServableId("m", 2), new FileNotFoundException("model.onnx missing")),
        ]);
        await driver.SettleAsync();

        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 1));
        ServableState bad = driver.State("m", 2)!;
        Assert.True(bad.IsError);
        Assert.Contains("model.onnx missing", bad.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetAspiredVersions_ItemsForOtherServablesOrRepeated_Ignored()
    {
        await using var driver = new ManagerDriver();
        var first = new FakeLoader("m", 1);
        var repeat = new FakeLoader("m", 1);
        var stray = new FakeLoader("x", 1);
        driver.Manager.SetAspiredVersions("m",
        [
            ServableData.Create<Loader>(first.Id, first),
            ServableData.Create<Loader>(repeat.Id, repeat),
            ServableData.Create<Loader>(stray.Id, stray),
        ]);
        await driver.SettleAsync();

        Assert.Equal([new ServableId("m", 1)], driver.Manager.ListAvailableServableIds());
        Assert.Equal((1, 0, 0), (first.LoadCalls, repeat.LoadCalls, stray.LoadCalls));
    }

    [Fact]
    public async Task ResourceBudget_LoadThatDoesNotFit_RefusedWithReason_FreesNothing()
    {
        await using var driver = new ManagerDriver(o => o.ResourceBudget = ResourceAllocation.Ram(100));
        driver.Aspire("a", [1], estimate: ResourceAllocation.Ram(60));
        await driver.SettleAsync();

        driver.Aspire("b", [1], estimate: ResourceAllocation.Ram(60));
        await driver.SettleAsync();

        ServableState refused = driver.State("b", 1)!;
        Assert.True(refused.IsError);
        var error = Assert.IsType<ServableLoadException>(refused.Error);
        Assert.True(error.IsResourceRefusal);
        Assert.Contains("Not enough resources to load b:1", error.Message, StringComparison.Ordinal);
        Assert.Contains("main:0/ram=60", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, driver.Loaders[new ServableId("b", 1)].LoadCalls);
        Assert.Equal(ServableManagerState.Available, driver.StateOf("a", 1));
        Assert.Equal(ResourceAllocation.Ram(60), driver.Manager.ReservedResources);
    }

    [Fact]
    public async Task ResourceBudget_ShrunkEstimateAfterLoad_ReleasesTheDifference()
    {
        await using var driver = new ManagerDriver(o => o.ResourceBudget = ResourceAllocation.Ram(100));
        var loader = new FakeLoader(new ServableId("a", 1), ResourceAllocation.Ram(90), estimateAfterLoad: ResourceAllocation.Ram(30));
        driver.Manager.SetAspiredVersions("a", [ServableData.Create<Loader>(loader.Id, loader)]);
        await driver.SettleAsync();
        Assert.Equal(ResourceAllocation.Ram(30), driver.Manager.ReservedResources);

        driver.Aspire("b", [1], estimate: ResourceAllocation.Ram(70));
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Available, driver.StateOf("b", 1));
        Assert.Equal(ResourceAllocation.Ram(100), driver.Manager.ReservedResources);
    }

    [Fact]
    public async Task ResourceBudget_ResourcePreserving_SwapsWithinABudgetForOne()
    {
        await using var driver = new ManagerDriver(o => (o.ResourceBudget, o.Policy) = (ResourceAllocation.GpuMemory(100), AspiredVersionPolicy.ResourcePreserving));
        driver.Aspire("m", [1], estimate: ResourceAllocation.GpuMemory(80));
        await driver.SettleAsync();
        ServableHandle<FakeServable> held = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));

        driver.Aspire("m", [2], estimate: ResourceAllocation.GpuMemory(80));
        await driver.SettleAsync();

        // v1 drains first; v2 waits (not refused) while v1's handle is held.
        Assert.Equal(ServableManagerState.Unloading, driver.StateOf("m", 1));
        Assert.Equal(ServableManagerState.Start, driver.StateOf("m", 2));
        Assert.Equal(0, driver.Loaders[new ServableId("m", 2)].LoadCalls);

        held.Dispose();
        await Eventually.WaitUntilAsync(() => driver.StateOf("m", 1) == ServableManagerState.End);
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 2));
        Assert.Equal(ResourceAllocation.GpuMemory(80), driver.Manager.ReservedResources);
    }

    [Fact]
    public async Task ReAspire_AvailableVersionBeforeItUnloads_KeepsIt()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        FakeLoader v2 = driver.Aspire("m", [2], l => l.BlockLoads())[0];
        Task turn = driver.TurnAsync(); // v2 starts loading and blocks
        await Eventually.WaitUntilAsync(() => v2.LoadCalls == 1);

        driver.Manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), new FakeLoader("m", 1))]);
        await driver.TurnAsync(); // un-aspiring v2 cancels its load
        await turn;
        await driver.SettleAsync();

        Assert.Equal([new ServableId("m", 1)], driver.Manager.ListAvailableServableIds());
        Assert.Equal(1, driver.Loaders[new ServableId("m", 1)].LoadCalls);
    }

    [Fact]
    public async Task Options_Invalid_ThrowListingProblems()
    {
        ArgumentException error = Assert.Throws<ArgumentException>(() => new AspiredVersionsManager(new AspiredVersionsManagerOptions
        {
            LoadWorkerCount = 0,
            MaxLoadRetries = -1,
            ManageStateInterval = TimeSpan.Zero,
        }));
        Assert.Contains("LoadWorkerCount", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxLoadRetries", error.Message, StringComparison.Ordinal);
        Assert.Contains("ManageStateInterval", error.Message, StringComparison.Ordinal);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task DisposeAsync_UnloadsEverything_AndLaterCallsThrow()
    {
        var driver = new ManagerDriver();
        driver.Aspire("m", [1, 2]);
        await driver.SettleAsync();
        ServableHandle<FakeServable> held = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Specific("m", 2));

        await driver.DisposeAsync();

        Assert.True(driver.Loaders[new ServableId("m", 1)].Created!.IsDisposed);
        Assert.False(held.Value.IsDisposed); // still leased
        Assert.Empty(driver.Manager.ListAvailableServableIds());
        Assert.Throws<ObjectDisposedException>(() => driver.Aspire("m", [3]));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => driver.Manager.ManageStateAsync());

        held.Dispose();
        await Eventually.WaitUntilAsync(() => driver.Loaders[new ServableId("m", 2)].Created!.IsDisposed);
    }

    [Fact]
    public async Task BackgroundLoop_LoadsWithoutManualTurns()
    {
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = TimeSpan.FromMilliseconds(20) });
        using var monitor = new ServableStateMonitor(manager);
        var loader = new FakeLoader("m", 1);
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(loader.Id, loader)]);

        ServableAvailability result = await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("m")], TimeSpan.FromSeconds(10));
        Assert.True(result.IsAvailable);
        using ServableHandle<FakeServable> handle = manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        Assert.Equal(1, handle.Id.Version);
    }

    [Fact]
    public async Task ThrowingObserver_DoesNotBreakTheManager()
    {
        await using var driver = new ManagerDriver();
        using IDisposable subscription = driver.Manager.Subscribe(new ThrowingObserver());
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 1));
    }

    private sealed class ThrowingObserver : IObserver<ServableState>
    {
        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void OnNext(ServableState value) => throw new InvalidOperationException("observer bug");
    }
}
