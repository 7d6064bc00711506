namespace Servables.Core.Tests.Manager;

public sealed class LoadedVersionTests
{
    [Fact]
    public void TryAcquire_AfterLastRelease_NeverRevives()
    {
        int drained = 0;
        var harness = new LoaderHarness(new ServableId("m", 1), null, _ => drained++, CancellationToken.None);
        var version = new LoadedVersion(harness, new object());

        Assert.True(version.TryAcquire());
        version.Release(); // the handle
        Assert.Equal(0, drained);
        version.Release(); // the serving map's own reference

        Assert.Equal(1, drained);
        Assert.False(version.TryAcquire());
        Assert.Equal(0, version.LeaseCount);
    }

    [Fact]
    public void Release_BelowZero_Throws()
    {
        var harness = new LoaderHarness(new ServableId("m", 1), null, _ => { }, CancellationToken.None);
        var version = new LoadedVersion(harness, new object());
        version.Release();
        Assert.Throws<InvalidOperationException>(version.Release);
    }
}
