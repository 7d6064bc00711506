using Servables.Testing;

namespace Servables.Core.Tests.Loading;

public sealed class SimpleLoaderTests
{
    [Fact]
    public async Task LoadAsync_PassesItsTokenToTheFactory()
    {
        using var cts = new CancellationTokenSource();
        CancellationToken seen = default;
        var loader = new SimpleLoader<FakeServable>(ct =>
        {
            seen = ct;
            return Task.FromResult(new FakeServable(new ServableId("m", 1)));
        });

        await loader.LoadAsync(cts.Token);

        Assert.Equal(cts.Token, seen);
    }

    [Fact]
    public async Task LoadAsync_SyncFactoryThrows_FaultsTheLoadAndLeavesNoServable()
    {
        var loader = new SimpleLoader<FakeServable>(() => throw new IOException("disk"));

        IOException ex = await Assert.ThrowsAsync<IOException>(() => loader.LoadAsync());

        Assert.Equal("disk", ex.Message);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public async Task UnloadAsync_WithDestroyer_CallsItInsteadOfDisposing()
    {
        var servable = new FakeServable(new ServableId("m", 1));
        FakeServable? destroyed = null;
        var loader = new SimpleLoader<FakeServable>(_ => Task.FromResult(servable), s =>
        {
            destroyed = s;
            return Task.CompletedTask;
        });
        await loader.LoadAsync();

        await loader.UnloadAsync();

        Assert.Same(servable, destroyed);
        Assert.False(servable.IsDisposed);
    }

    [Fact]
    public async Task UnloadAsync_WithoutDestroyer_DisposesTheServable()
    {
        var servable = new FakeServable(new ServableId("m", 1));
        var loader = new SimpleLoader<FakeServable>(() => servable);
        await loader.LoadAsync();

        await loader.UnloadAsync();

        Assert.True(servable.IsDisposed);
    }

    [Fact]
    public void EstimateResources_ReturnsTheGivenEstimate_OrNone()
    {
        Assert.Equal(ResourceAllocation.Ram(42), new SimpleLoader<object>(() => new object(), ResourceAllocation.Ram(42)).EstimateResources());
        Assert.True(new SimpleLoader<object>(() => new object()).EstimateResources().IsEmpty);
    }

    [Fact]
    public void Constructor_NullFactory_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new SimpleLoader<object>((Func<object>)null!));
        Assert.Throws<ArgumentNullException>(() => new SimpleLoader<object>((Func<CancellationToken, Task<object>>)null!));
    }
}
