using Servables.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Servables.Async.Tests.Queue;

/// <summary>Stopping and disposing an API while its handler still runs: bounded, logged, and nothing disposed under a running request.</summary>
public sealed class AsyncApiShutdownTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task StopAsync_HandlerIgnoresCancellation_ReturnsAfterGrace_LogsAbandoned_DisposesNothingUnderIt()
    {
        var probe = new LifetimeProbe();
        var logs = new AsyncApiLoggingTests.ScopeCapturingProvider();
        AsyncHost host = await AsyncHost.StartAsync(
            s => s.AddSingleton(probe).AddAsyncHandler<LifetimeHandler>(o => (o.AbandonTimeout, o.StoreFactory) = (TimeSpan.FromMilliseconds(100), (_, so) => probe.Store(so))),
            logs: logs);
        IAsyncApiClient client = host.Client();
        try
        {
            string stuck = await client.SubmitTextAsync("stubborn");
            await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(stuck)).State == AsyncRequestState.InProgress);
            string queued = await client.SubmitTextAsync("never runs");

            using (var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
            {
                await host.Host.StopAsync(shutdownTimeout.Token).WaitAsync(Bound);
            }

            // Disposing the host disposes the API: bounded too, and the handler and store stay undisposed while it runs.
            await ((IAsyncDisposable)host.Host).DisposeAsync().AsTask().WaitAsync(Bound);
            Assert.False(probe.Disposed);
            Assert.False(probe.StoreDisposed);

            Assert.Contains(logs.Lines, l => l.EventId == 212 && l.Message.Contains(stuck, StringComparison.Ordinal));
            Assert.Contains(logs.Lines, l => l.EventId == 212 && l.Message.Contains(queued, StringComparison.Ordinal));
            Assert.Contains(logs.Lines, l => l.EventId == 213);
            AsyncRequestStatus stuckStatus = await client.GetStatusAsync(stuck);
            Assert.Equal(AsyncRequestState.Failed, stuckStatus.State);
            Assert.Contains("AbandonTimeout", stuckStatus.Error, StringComparison.Ordinal);
            Assert.Equal(AsyncRequestState.Failed, (await client.GetStatusAsync(queued)).State);
        }
        finally
        {
            probe.Gate.TrySetResult();
        }

        // The handler returns at last: now, and only now, the handler and store are disposed.
        await probe.DisposedOnce.Task.WaitAsync(Bound);
        await Eventually.WaitUntilAsync(() => Task.FromResult(probe.StoreDisposed));
        Assert.False(probe.DisposedUnderARunningRequest);
    }

    [Fact]
    public async Task StopAsync_HandlerIgnoresCancellation_StoreHangsOnTheAbandonment_StillReturnsAfterGrace()
    {
        var probe = new LifetimeProbe();
        var storeAnswers = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        AsyncHost host = await AsyncHost.StartAsync(s => s.AddSingleton(probe).AddAsyncHandler<LifetimeHandler>(o => (o.AbandonTimeout, o.StoreFactory) =
            (TimeSpan.FromMilliseconds(100), (_, so) => new FailHangsStore(new InMemoryAsyncResultStore(so), storeAnswers.Task))));
        IAsyncApiClient client = host.Client();
        try
        {
            string stuck = await client.SubmitTextAsync("stubborn");
            await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(stuck)).State == AsyncRequestState.InProgress);

            using (var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
            {
                await host.Host.StopAsync(shutdownTimeout.Token).WaitAsync(Bound);
            }

            await ((IAsyncDisposable)host.Host).DisposeAsync().AsTask().WaitAsync(Bound);
            Assert.False(probe.Disposed); // the abandonment still waits on the store, and the handler still runs
        }
        finally
        {
            storeAnswers.TrySetResult();
            probe.Gate.TrySetResult();
        }

        await probe.DisposedOnce.Task.WaitAsync(Bound);
        Assert.False(probe.DisposedUnderARunningRequest);
    }

    [Fact]
    public async Task DisposeAsync_WhileStopAsyncDrains_WaitsForTheSameStop_DisposesAfterTheLanes()
    {
        var probe = new LifetimeProbe();
        AsyncHost host = await AsyncHost.StartAsync(s => s.AddSingleton(probe).AddAsyncHandler<LifetimeHandler>(o => o.StoreFactory = (_, so) => probe.Store(so)));
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        IHostedService service = Assert.Single(host.Host.Services.GetServices<IHostedService>(), h => h.GetType().Name == "AsyncApiHostedService");

        // The host drains with a long shutdown timeout while, say, a second Ctrl+C disposes the container.
        using var longTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        Task stopping = service.StopAsync(longTimeout.Token);
        Task disposing = ((IAsyncDisposable)host.Host.Services).DisposeAsync().AsTask();

        await Task.WhenAll(stopping, disposing).WaitAsync(Bound);
        Assert.True(probe.Disposed);
        Assert.True(probe.StoreDisposed);
        Assert.False(probe.DisposedUnderARunningRequest);
        probe.Gate.TrySetResult();
    }

    [Fact]
    public async Task StopAndDispose_ManyConcurrentCallers_OneSequence_NothingDisposedUnderARequest()
    {
        for (int round = 0; round < 20; round++)
        {
            var probe = new LifetimeProbe();
            AsyncHost host = await AsyncHost.StartAsync(s => s.AddSingleton(probe).AddAsyncHandler<LifetimeHandler>(o => (o.WorkerCount, o.StoreFactory) = (2, (_, so) => probe.Store(so))));
            IAsyncApiClient client = host.Client();
            for (int i = 0; i < 4; i++)
            {
                await client.SubmitTextAsync(i % 2 == 0 ? "gate" : "x");
            }

            AsyncApi api = host.Host.Services.GetRequiredKeyedService<AsyncApi>(AsyncApiOptions.DefaultName);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(round % 5));
            // A stop begins first (as the host's does), then stops and disposals race it.
            Task[] callers = [api.StopAsync(timeout.Token), .. Enumerable.Range(0, 6).Select(i => Task.Run(async () =>
            {
                if (i % 2 == 0)
                {
                    await api.StopAsync(timeout.Token);
                }
                else
                {
                    await api.DisposeAsync();
                }
            }))];
            if (round % 2 == 0)
            {
                probe.Gate.TrySetResult();
            }

            await Task.WhenAll(callers).WaitAsync(Bound);
            await probe.DisposedOnce.Task.WaitAsync(Bound);
            Assert.False(probe.DisposedUnderARunningRequest, $"round {round}");
            probe.Gate.TrySetResult();
            await ((IAsyncDisposable)host.Host).DisposeAsync();
        }
    }

    /// <summary>A plain store whose failing of a request answers only when <c>answers</c> completes: a store slow or gone at shutdown.</summary>
    private sealed class FailHangsStore(IAsyncResultStore inner, Task answers) : IAsyncResultStore
    {
        public bool IsDurable => false;

        public async ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            await answers;
            return await inner.TryFailAsync(requestId, errorText, at, cancellationToken);
        }

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

        public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => inner.GetAsync(requestId, includePayload, cancellationToken);

        public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryMarkInProgressAsync(requestId, at, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
