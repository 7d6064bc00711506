namespace Servables.Core.Tests.Resources;

public sealed class ResourceTrackerTests
{
    [Fact]
    public void TryReserve_WithinBudget_AddsToUsed()
    {
        var tracker = new ResourceTracker(ResourceAllocation.Ram(100));

        Assert.True(tracker.TryReserve(ResourceAllocation.Ram(60), out string? refusal));
        Assert.Null(refusal);
        Assert.True(tracker.TryReserve(ResourceAllocation.Ram(40), out _));

        Assert.Equal(ResourceAllocation.Ram(100), tracker.Used);
    }

    [Fact]
    public void TryReserve_BeyondBudget_RefusesSayingWhy_AndReservesNothing()
    {
        var tracker = new ResourceTracker(ResourceAllocation.Ram(100));
        tracker.TryReserve(ResourceAllocation.Ram(60), out _);

        Assert.False(tracker.TryReserve(ResourceAllocation.Ram(41), out string? refusal));

        Assert.Equal(ResourceAllocation.Ram(60), tracker.Used);
        Assert.Contains(ResourceAllocation.Ram(41).ToString(), refusal, StringComparison.Ordinal);
        Assert.Contains(ResourceAllocation.Ram(60).ToString(), refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void TryReserve_NoBudget_AlwaysReserves()
    {
        var tracker = new ResourceTracker(null);

        Assert.True(tracker.TryReserve(ResourceAllocation.Ram(long.MaxValue / 2), out _));
        Assert.True(tracker.CouldEverFit(ResourceAllocation.GpuMemory(long.MaxValue)));
    }

    [Fact]
    public void CouldEverFit_IgnoresWhatIsReservedNow()
    {
        var tracker = new ResourceTracker(ResourceAllocation.Ram(100));
        tracker.TryReserve(ResourceAllocation.Ram(100), out _);

        Assert.True(tracker.CouldEverFit(ResourceAllocation.Ram(100)));
        Assert.False(tracker.CouldEverFit(ResourceAllocation.Ram(101)));
        Assert.False(tracker.CouldEverFit(ResourceAllocation.GpuMemory(1)));
    }

    [Fact]
    public void Release_MakesRoomForTheNextReservation()
    {
        var tracker = new ResourceTracker(ResourceAllocation.Ram(100));
        tracker.TryReserve(ResourceAllocation.Ram(70), out _);
        Assert.False(tracker.TryReserve(ResourceAllocation.Ram(70), out _));

        tracker.Release(ResourceAllocation.Ram(70));

        Assert.True(tracker.Used.IsEmpty);
        Assert.True(tracker.TryReserve(ResourceAllocation.Ram(70), out _));
    }
}
