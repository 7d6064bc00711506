using Servables.Testing;

namespace Servables.Core.Tests.Policies;

public sealed class ResourcePreservingPolicyTests
{
    private static readonly AspiredVersionPolicy Policy = AspiredVersionPolicy.ResourcePreserving;

    private static AspiredVersionState V(long version, bool aspired, AspiredVersionLoadState state) => new(new ServableId("m", version), aspired, state);

    [Fact]
    public void GetNextAction_OldVersionServing_UnloadsItFirst() =>
        Assert.Equal(
            AspiredVersionAction.Unload(new ServableId("m", 1)),
            Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available), V(2, true, AspiredVersionLoadState.New)]));

    [Fact]
    public void GetNextAction_OldVersionStillUnloading_Waits() =>
        Assert.Null(Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Unloading), V(2, true, AspiredVersionLoadState.New)]));

    [Fact]
    public void GetNextAction_OldVersionGone_LoadsNew() =>
        Assert.Equal(
            AspiredVersionAction.Load(new ServableId("m", 2)),
            Policy.GetNextAction([V(2, true, AspiredVersionLoadState.New)]));

    [Fact]
    public async Task Swap_OldVersionDrainsBeforeNewLoads()
    {
        await using var driver = new ManagerDriver(o => o.Policy = AspiredVersionPolicy.ResourcePreserving);
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        ServableHandle<FakeServable> held = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));

        driver.Aspire("m", [2]);
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Unloading, driver.StateOf("m", 1));
        Assert.Equal(0, driver.Loaders[new ServableId("m", 2)].LoadCalls);
        Assert.False(driver.Manager.TryGetServableHandle<FakeServable>(ServableRequest.Latest("m"), out _));

        held.Dispose();
        await Eventually.WaitUntilAsync(() => driver.StateOf("m", 1) == ServableManagerState.End);
        await driver.SettleAsync();

        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 2));
        List<ServableState> log = [.. driver.Monitor.GetEventLog()];
        int v1End = log.FindIndex(s => s.Id.Version == 1 && s.State == ServableManagerState.End);
        int v2Loading = log.FindIndex(s => s.Id.Version == 2 && s.State == ServableManagerState.Loading);
        Assert.True(v1End < v2Loading, "v1 must be unloaded before v2 starts loading");
    }
}
