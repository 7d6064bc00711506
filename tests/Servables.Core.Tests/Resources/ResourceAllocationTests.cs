namespace Servables.Core.Tests.Resources;

public sealed class ResourceAllocationTests
{
    private static readonly ResourceAllocation RamAndGpu = ResourceAllocation.Ram(100).With(Resource.GpuMemory(0), 50);

    [Fact]
    public void Add_SumsPerResource_AndKeepsDevicesApart()
    {
        ResourceAllocation sum = RamAndGpu.Add(ResourceAllocation.Ram(10)).Add(ResourceAllocation.GpuMemory(7, device: 1));

        Assert.Equal(110, sum[Resource.Ram]);
        Assert.Equal(50, sum[Resource.GpuMemory(0)]);
        Assert.Equal(7, sum[Resource.GpuMemory(1)]);
    }

    [Fact]
    public void Add_Overflow_Throws() =>
        Assert.Throws<OverflowException>(() => ResourceAllocation.Ram(long.MaxValue).Add(ResourceAllocation.Ram(1)));

    [Fact]
    public void Subtract_FloorsAtZero_AndDropsResourcesThatReachZero()
    {
        ResourceAllocation rest = RamAndGpu.Subtract(ResourceAllocation.Ram(30).With(Resource.GpuMemory(0), 80));

        Assert.Equal(70, rest[Resource.Ram]);
        Assert.False(rest.Quantities.ContainsKey(Resource.GpuMemory(0)));
        Assert.True(RamAndGpu.Subtract(RamAndGpu).IsEmpty);
    }

    [Fact]
    public void Min_TakesTheSmallerPerResource_AndDropsWhatTheOtherLacks()
    {
        ResourceAllocation min = RamAndGpu.Min(ResourceAllocation.Ram(60));

        Assert.Equal(ResourceAllocation.Ram(60), min);
    }

    [Theory]
    [InlineData(100, 50, true)]
    [InlineData(101, 50, false)]
    [InlineData(100, 51, false)]
    public void FitsWithin_ComparesEveryResource(long ram, long gpu, bool fits) =>
        Assert.Equal(fits, ResourceAllocation.Ram(ram).With(Resource.GpuMemory(0), gpu).FitsWithin(RamAndGpu));

    [Fact]
    public void FitsWithin_AResourceTheBudgetLacks_DoesNotFit() =>
        Assert.False(ResourceAllocation.GpuMemory(1, device: 3).FitsWithin(RamAndGpu));

    [Fact]
    public void With_Zero_RemovesTheResource_AndNegativeThrows()
    {
        Assert.Equal(ResourceAllocation.GpuMemory(50), RamAndGpu.With(Resource.Ram, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => RamAndGpu.With(Resource.Ram, -1));
    }

    [Fact]
    public void Equals_IgnoresTheOrderOfConstruction_AndHashesAlike()
    {
        ResourceAllocation other = ResourceAllocation.GpuMemory(50).With(Resource.Ram, 100);

        Assert.Equal(RamAndGpu, other);
        Assert.Equal(RamAndGpu.GetHashCode(), other.GetHashCode());
        Assert.NotEqual(RamAndGpu, ResourceAllocation.Ram(100));
    }
}
