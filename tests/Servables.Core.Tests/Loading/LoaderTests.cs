namespace Servables.Core.Tests.Loading;

/// <summary>The <see cref="Loader{T}"/> base: load once, retry after a failure, clear before destroying.</summary>
public sealed class LoaderTests
{
    [Fact]
    public async Task LoadAsync_AfterASuccessfulLoad_ThrowsAndKeepsTheFirstServable()
    {
        var loader = new CountingLoader();
        await loader.LoadAsync();
        object first = loader.Value!;

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("already loaded", ex.Message, StringComparison.Ordinal);
        Assert.Same(first, loader.Value);
        Assert.Equal(1, loader.Creates);
    }

    [Fact]
    public async Task LoadAsync_AfterAFailedAttempt_RunsCreateAgain()
    {
        var loader = new CountingLoader { FailuresLeft = 1 };

        await Assert.ThrowsAsync<IOException>(() => loader.LoadAsync());
        Assert.Null(loader.Servable);
        await loader.LoadAsync();

        Assert.Equal(2, loader.Creates);
        Assert.NotNull(loader.Value);
    }

    [Fact]
    public async Task LoadAsync_CreateReturnsNull_ThrowsAndCanBeRetried()
    {
        var loader = new CountingLoader { ReturnNull = true };

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());
        Assert.Contains("returned null", ex.Message, StringComparison.Ordinal);

        loader.ReturnNull = false;
        await loader.LoadAsync();
        Assert.NotNull(loader.Servable);
    }

    [Fact]
    public async Task UnloadAsync_ClearsTheServableBeforeDestroyingIt_AndDestroysOnce()
    {
        var loader = new CountingLoader();
        await loader.LoadAsync();

        await loader.UnloadAsync();
        await loader.UnloadAsync();

        Assert.Equal(1, loader.Destroys);
        Assert.Null(loader.ValueSeenDuringDestroy);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public async Task UnloadAsync_DefaultDestroy_PrefersDisposeAsyncOverDispose()
    {
        var servable = new BothDisposable();
        var loader = new SimpleLoader<BothDisposable>(() => servable);
        await loader.LoadAsync();

        await loader.UnloadAsync();

        Assert.Equal((1, 0), (servable.AsyncDisposals, servable.Disposals));
    }

    [Fact]
    public async Task UnloadAsync_BeforeLoad_DoesNothing()
    {
        var loader = new CountingLoader();

        await loader.UnloadAsync();

        Assert.Equal(0, loader.Destroys);
    }

    private sealed class CountingLoader : Loader<object>
    {
        public int Creates { get; private set; }

        public int Destroys { get; private set; }

        public int FailuresLeft { get; set; }

        public bool ReturnNull { get; set; }

        public object? ValueSeenDuringDestroy { get; private set; } = "not destroyed";

        protected override Task<object> CreateAsync(CancellationToken cancellationToken)
        {
            Creates++;
            if (FailuresLeft-- > 0)
            {
                throw new IOException("Simulated failure.");
            }

            return Task.FromResult(ReturnNull ? null! : new object());
        }

        protected override Task DestroyAsync(object servable, CancellationToken cancellationToken)
        {
            Destroys++;
            ValueSeenDuringDestroy = Value;
            return Task.CompletedTask;
        }
    }

    private sealed class BothDisposable : IDisposable, IAsyncDisposable
    {
        public int Disposals { get; private set; }

        public int AsyncDisposals { get; private set; }

        public void Dispose() => Disposals++;

        public ValueTask DisposeAsync()
        {
            AsyncDisposals++;
            return ValueTask.CompletedTask;
        }
    }
}
