using Servables.Testing;

namespace Servables.Core.Tests.Manager;

public sealed class LoadTimeoutTests
{
    [Fact]
    public async Task HungLoad_TimesOut_GoesToError_AndTheSingleWorkerLoadsTheOtherServable()
    {
        await using var driver = new ManagerDriver(o => o.LoadTimeout = TimeSpan.FromSeconds(10)); // one load worker: the default
        var hang = new TaskCompletionSource<FakeServable>(TaskCreationOptions.RunContinuationsAsynchronously);
        CancellationToken seen = default;
        var hung = new SimpleLoader<FakeServable>(ct =>
        {
            seen = ct;
            return hang.Task; // ignores its token
        });
        driver.Manager.SetAspiredVersions("hung", [ServableData.Create<Loader>(new ServableId("hung", 1), hung)]);
        FakeLoader other = driver.Aspire("other", [1])[0];

        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(1);
        Assert.Equal(0, other.LoadCalls); // queued behind the hung load
        driver.Time.Advance(TimeSpan.FromSeconds(10));
        await turn;

        ServableState state = driver.State("hung", 1)!;
        Assert.True(state.IsError);
        Assert.Contains("timed out after 00:00:10", state.Error!.Message, StringComparison.Ordinal);
        Assert.IsType<TimeoutException>(state.Error.InnerException);
        Assert.True(seen.IsCancellationRequested);
        Assert.Equal(ServableManagerState.Available, driver.StateOf("other", 1));

        // The abandoned attempt returns at last: what it made is destroyed, and nothing is loaded twice.
        var late = new FakeServable(new ServableId("hung", 1));
        hang.SetResult(late);
        await Eventually.WaitUntilAsync(() => late.IsDisposed);
        await driver.SettleAsync();
        Assert.True(driver.State("hung", 1)!.IsError);
        Assert.False(driver.Manager.TryGetServableHandle(ServableRequest.Latest("hung"), out ServableHandle<FakeServable> _));
    }

    [Fact]
    public async Task HungLoad_KeepsItsReservationUntilItReturns_ThenTheDeferredLoadRuns()
    {
        await using var driver = new ManagerDriver(o =>
        {
            o.LoadTimeout = TimeSpan.FromSeconds(10);
            o.ResourceBudget = ResourceAllocation.Ram(150);
        });
        var hang = new TaskCompletionSource<FakeServable>(TaskCreationOptions.RunContinuationsAsynchronously);
        var hung = new SimpleLoader<FakeServable>(_ => hang.Task, estimate: ResourceAllocation.Ram(100));
        driver.Manager.SetAspiredVersions("hung", [ServableData.Create<Loader>(new ServableId("hung", 1), hung)]);
        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(1);
        driver.Time.Advance(TimeSpan.FromSeconds(10));
        await turn;
        Assert.True(driver.State("hung", 1)!.IsError);
        Assert.Equal(ResourceAllocation.Ram(100), driver.Manager.ReservedResources);

        FakeLoader other = driver.Aspire("other", [1], estimate: ResourceAllocation.Ram(100))[0];
        await driver.SettleAsync();
        Assert.Equal(0, other.LoadCalls); // deferred, not refused: the hung load may still free its share
        Assert.False(driver.State("other", 1)!.IsError);

        hang.SetException(new IOException("gave up at last"));
        await Eventually.WaitUntilAsync(() => driver.Manager.ReservedResources.Equals(ResourceAllocation.None) || other.LoadCalls > 0);
        await driver.SettleAsync();
        Assert.Equal(ServableManagerState.Available, driver.StateOf("other", 1));
        Assert.Equal(ResourceAllocation.Ram(100), driver.Manager.ReservedResources);
    }

    [Fact]
    public async Task ServableLoadTimeouts_OverrideTheManagersTimeoutForThatServable()
    {
        await using var driver = new ManagerDriver(o =>
        {
            o.LoadTimeout = TimeSpan.FromHours(1);
            o.ServableLoadTimeouts["quick"] = TimeSpan.FromSeconds(2);
        });
        var never = new TaskCompletionSource<FakeServable>();
        driver.Manager.SetAspiredVersions("quick", [ServableData.Create<Loader>(new ServableId("quick", 1), new SimpleLoader<FakeServable>(_ => never.Task))]);

        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(1);
        driver.Time.Advance(TimeSpan.FromSeconds(2));
        await turn;

        Assert.Contains("timed out after 00:00:02", driver.State("quick", 1)!.Error!.Message, StringComparison.Ordinal);
        never.SetResult(new FakeServable(new ServableId("quick", 1)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Options_LoadTimeoutOutOfRange_IsRejectedByName(int seconds)
    {
        var options = new AspiredVersionsManagerOptions { LoadTimeout = TimeSpan.FromSeconds(seconds) };
        options.ServableLoadTimeouts["big"] = TimeSpan.FromDays(2);

        ArgumentException ex = Assert.Throws<ArgumentException>(() => new AspiredVersionsManager(options));

        Assert.Contains("LoadTimeout must be between 1 ms and 1 day", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ServableLoadTimeouts[\"big\"] must be between 1 ms and 1 day", ex.Message, StringComparison.Ordinal);
    }
}
