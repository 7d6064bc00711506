using Microsoft.Extensions.Logging;
using Servables.Testing;

namespace Servables.Core.Tests.Manager;

/// <summary>Stopping is bounded: loaders and unloaders that ignore their tokens cannot hold a host's shutdown forever.</summary>
public sealed class ManagerStopTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task DisposeAsync_LoadIgnoresItsToken_ReturnsAfterStopTimeout_AndLogsWhatWasAbandoned()
    {
        var time = new ObservedTimeProvider();
        var logs = new CapturingLoggerProvider();
        var manager = new AspiredVersionsManager(
            new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan, TimeProvider = time, StopTimeout = TimeSpan.FromSeconds(30) },
            logs.CreateLogger<AspiredVersionsManager>());
        var never = new TaskCompletionSource<FakeServable>();
        manager.SetAspiredVersions("stuck", [ServableData.Create<Loader>(new ServableId("stuck", 3), new SimpleLoader<FakeServable>(_ => never.Task))]);
        _ = manager.ManageStateAsync();
        await time.WaitForTimersAsync(1); // the load runs (its timeout timer is set)

        Task disposing = manager.DisposeAsync().AsTask();
        await time.WaitForTimersAsync(2); // the stop's deadline is set
        Assert.False(disposing.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(30));
        await disposing.WaitAsync(Patience);

        CapturingLoggerProvider.LogEntry abandoned = Assert.Single(logs.Entries, e => e.EventId.Id == 128);
        Assert.Contains("stuck:3 (loading)", abandoned.Message, StringComparison.Ordinal);
        never.SetResult(new FakeServable(new ServableId("stuck", 3)));
    }

    [Fact]
    public async Task StopAsync_UnloadIgnoresItsToken_ReturnsWhenTheHostsTokenFires_AndCancelsTheUnloadsToken()
    {
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan, StopTimeout = Timeout.InfiniteTimeSpan });
        var loader = new StubbornLoader();
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), loader)]);
        await manager.ManageStateAsync().WaitAsync(Patience);
        Assert.True(manager.TryGetServableHandle(ServableRequest.Latest("m"), out ServableHandle<FakeServable> handle));
        handle.Dispose();

        using var hostShutdown = new CancellationTokenSource();
        Task stopping = manager.StopAsync(hostShutdown.Token);
        await loader.DestroyStarted.Task.WaitAsync(Patience);
        Assert.False(stopping.IsCompleted);
        await hostShutdown.CancelAsync();
        await stopping.WaitAsync(Patience);

        Assert.True(loader.DestroyToken.IsCancellationRequested);
        loader.Release.SetResult();
    }

    [Fact]
    public async Task StopAsync_CalledTwiceAndThenDisposed_AllWaitForTheOneStop()
    {
        var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        var loader = new StubbornLoader();
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), loader)]);
        await manager.ManageStateAsync().WaitAsync(Patience);

        Task first = manager.StopAsync();
        Task second = manager.StopAsync();
        Task disposing = manager.DisposeAsync().AsTask();
        await loader.DestroyStarted.Task.WaitAsync(Patience);
        Assert.False(first.IsCompleted || second.IsCompleted || disposing.IsCompleted);
        loader.Release.SetResult();

        await Task.WhenAll(first, second, disposing).WaitAsync(Patience);
        Assert.Equal(1, loader.Destroys);
        Assert.Throws<ObjectDisposedException>(() => manager.SetAspiredVersions("m", []));
    }

    [Fact]
    public async Task Unload_GetsATokenThatIsNotCancelledWhileTheManagerWaits()
    {
        var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        var loader = new StubbornLoader();
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), loader)]);
        await manager.ManageStateAsync().WaitAsync(Patience);
        manager.SetAspiredVersions("m", []);
        Task turn = manager.ManageStateAsync(); // completes when the unload it started has finished
        await loader.DestroyStarted.Task.WaitAsync(Patience);

        Assert.True(loader.DestroyToken.CanBeCanceled);
        Assert.False(loader.DestroyToken.IsCancellationRequested);
        loader.Release.SetResult();
        await turn.WaitAsync(Patience);
        await manager.DisposeAsync();
    }

    /// <summary>A real <see cref="Loader{T}"/> whose destroy waits for the test and ignores its token.</summary>
    private sealed class StubbornLoader : Loader<FakeServable>
    {
        private int _destroys;

        public TaskCompletionSource DestroyStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationToken DestroyToken { get; private set; }

        public int Destroys => Volatile.Read(ref _destroys);

        protected override Task<FakeServable> CreateAsync(CancellationToken cancellationToken) => Task.FromResult(new FakeServable(new ServableId("m", 1)));

        protected override async Task DestroyAsync(FakeServable servable, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _destroys);
            DestroyToken = cancellationToken;
            DestroyStarted.TrySetResult();
            await Release.Task; // ignores the token
            servable.Dispose();
        }
    }
}
