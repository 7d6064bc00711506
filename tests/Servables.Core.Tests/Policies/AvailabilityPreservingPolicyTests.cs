using Servables.Testing;

namespace Servables.Core.Tests.Policies;

public sealed class AvailabilityPreservingPolicyTests
{
    private static readonly AspiredVersionPolicy Policy = AspiredVersionPolicy.AvailabilityPreserving;

    private static AspiredVersionState V(long version, bool aspired, AspiredVersionLoadState state) => new(new ServableId("m", version), aspired, state);

    [Fact]
    public void GetNextAction_NewAspiredVersions_LoadsHighestFirst() =>
        Assert.Equal(
            AspiredVersionAction.Load(new ServableId("m", 3)),
            Policy.GetNextAction([V(1, true, AspiredVersionLoadState.New), V(3, true, AspiredVersionLoadState.New), V(2, true, AspiredVersionLoadState.New)]));

    [Fact]
    public void GetNextAction_NewVersionNotYetAvailable_KeepsOldVersion() =>
        Assert.Equal(
            AspiredVersionAction.Load(new ServableId("m", 2)),
            Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available), V(2, true, AspiredVersionLoadState.New)]));

    [Fact]
    public void GetNextAction_NewVersionLoading_Waits() =>
        Assert.Null(Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available), V(2, true, AspiredVersionLoadState.Loading)]));

    [Fact]
    public void GetNextAction_NewVersionAvailable_UnloadsOld() =>
        Assert.Equal(
            AspiredVersionAction.Unload(new ServableId("m", 1)),
            Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available), V(2, true, AspiredVersionLoadState.Available)]));

    [Fact]
    public void GetNextAction_NewVersionFailed_KeepsOldVersionServing() =>
        Assert.Null(Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available), V(2, true, AspiredVersionLoadState.Error)]));

    [Fact]
    public void GetNextAction_NothingAspired_Unloads() =>
        Assert.Equal(
            AspiredVersionAction.Unload(new ServableId("m", 1)),
            Policy.GetNextAction([V(1, false, AspiredVersionLoadState.Available)]));

    [Fact]
    public async Task Swap_LatestResolvesAtEveryStep()
    {
        await using var driver = new ManagerDriver();
        driver.Aspire("m", [1]);
        await driver.SettleAsync();
        FakeLoader v2 = driver.Aspire("m", [2], l => l.BlockLoads())[0];
        var seen = new List<long>();

        Task turn = driver.TurnAsync();
        while (v2.LoadCalls == 0 || seen.Count < 10)
        {
            using ServableHandle<FakeServable> h = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
            seen.Add(h.Id.Version);
            await Task.Yield();
        }

        v2.ReleaseLoad();
        await turn;
        for (int i = 0; i < 5; i++)
        {
            using ServableHandle<FakeServable> h = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
            seen.Add(h.Id.Version);
            await driver.TurnAsync();
        }

        Assert.All(seen.Take(10), v => Assert.Equal(1, v)); // v1 until v2 is available
        Assert.Equal(2, seen[^1]);
        Assert.Equal(ServableManagerState.End, driver.StateOf("m", 1));
    }
}
