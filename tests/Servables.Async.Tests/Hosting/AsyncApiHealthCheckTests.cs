using Servables.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Servables.Async.Tests.Queue;

namespace Servables.Async.Tests.Hosting;

/// <summary>The async APIs' health checks, run by the real <see cref="HealthCheckService"/>.</summary>
public sealed class AsyncApiHealthCheckTests
{
    [Fact]
    public async Task AddAsyncApis_RunningApis_OneHealthyCheckEachWithDataAndDefaultTags()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s =>
        {
            s.AddHealthChecks().AddAsyncApis(); // before the APIs: they are found when the options are built
            s.AddAsyncHandler<EchoHandler>("echo", o => (o.QueueCapacity, o.WorkerCount, o.MaxConcurrencyPerWorker) = (10, 2, 3));
            s.AddAsyncHandler<EchoHandler>("other");
            s.AddHealthChecks().AddAsyncApis(); // again: no second check per API
        });

        HealthReport report = await host.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.Equal(["async-api:echo", "async-api:other"], report.Entries.Keys.Order());
        HealthReportEntry echo = report.Entries["async-api:echo"];
        Assert.Equal((0, 10, 6, 6), ((int)echo.Data["queue_depth"], (int)echo.Data["capacity"], (int)echo.Data["lanes"], (int)echo.Data["lanes_alive"]));
        Assert.Equal(["async", "ready", "servables"], echo.Tags.Order());
    }

    [Fact]
    public async Task AddAsyncApis_QueueNinetyPercentFull_Degraded_BelowIt_Healthy()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s =>
        {
            s.AddAsyncHandler<EchoHandler>(o => o.QueueCapacity = 10);
            s.AddHealthChecks().AddAsyncApis(tags: ["live-and-ready"]);
        });
        IAsyncApiClient client = host.Client();
        HealthCheckService health = host.Host.Services.GetRequiredService<HealthCheckService>();
        string blocker = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blocker)).State == AsyncRequestState.InProgress);
        for (int i = 0; i < 8; i++)
        {
            await client.SubmitTextAsync("queued");
        }

        HealthReportEntry eight = (await health.CheckHealthAsync()).Entries["async-api:default"];
        await client.SubmitTextAsync("queued");
        HealthReportEntry nine = (await health.CheckHealthAsync()).Entries["async-api:default"];
        host.Probe.Gate.SetResult();

        Assert.Equal((HealthStatus.Healthy, 8), (eight.Status, (int)eight.Data["queue_depth"]));
        Assert.Equal((HealthStatus.Degraded, 9), (nine.Status, (int)nine.Data["queue_depth"]));
        Assert.Contains("nearly full: 9 of 10", nine.Description, StringComparison.Ordinal);
        Assert.Equal(["live-and-ready"], nine.Tags);
    }

    [Fact]
    public async Task AddAsyncApis_ApiStopped_Unhealthy()
    {
        AsyncHost host = await AsyncHost.StartAsync(s =>
        {
            s.AddAsyncHandler<EchoHandler>();
            s.AddHealthChecks().AddAsyncApis();
        });
        HealthCheckService health = host.Host.Services.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync()).Status);

        await host.Host.StopAsync();

        HealthReportEntry stopped = (await health.CheckHealthAsync()).Entries["async-api:default"];
        Assert.Equal(HealthStatus.Unhealthy, stopped.Status);
        Assert.Contains("not running", stopped.Description, StringComparison.Ordinal);
        Assert.Equal(0, (int)stopped.Data["lanes_alive"]);
        await host.DisposeAsync();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AddAsyncApis_StoreFailsOrHangs_UnhealthyOrGivenFailureStatus(bool hangs)
    {
        var store = new UnreachableStore(hangs);
        await using AsyncHost host = await AsyncHost.StartAsync(s =>
        {
            s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, so) => store.Wrap(so));
            s.AddHealthChecks().AddAsyncApis(failureStatus: HealthStatus.Degraded, storeProbeTimeout: TimeSpan.FromMilliseconds(50));
        });
        HealthCheckService health = host.Host.Services.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync()).Status);

        store.Down = true;
        HealthReportEntry down = (await health.CheckHealthAsync().WaitAsync(TimeSpan.FromSeconds(10))).Entries["async-api:default"];

        Assert.Equal(HealthStatus.Degraded, down.Status); // the failure status given
        Assert.Contains(hangs ? "did not answer within" : "connection refused", down.Description, StringComparison.Ordinal);
        store.Down = false;
    }

    /// <summary>An in-memory store whose reads fail, or never answer, once it is down: a store across a network that is gone.</summary>
    private sealed class UnreachableStore(bool hangs)
    {
        public volatile bool Down;

        public bool Hangs => hangs;

        public IAsyncResultStore Wrap(AsyncResultStoreOptions options) => new Store(this, new InMemoryAsyncResultStore(options));

        private sealed class Store(UnreachableStore owner, IAsyncResultStore inner) : IAsyncResultStore
        {
            public bool IsDurable => false;

            public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) =>
                !owner.Down ? inner.GetAsync(requestId, includePayload, cancellationToken)
                : owner.Hangs ? new ValueTask<AsyncRequestRecord?>(Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ContinueWith(_ => (AsyncRequestRecord?)null, TaskScheduler.Default))
                : ValueTask.FromException<AsyncRequestRecord?>(new IOException("connection refused"));

            public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

            public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryMarkInProgressAsync(requestId, at, cancellationToken);

            public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

            public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryFailAsync(requestId, errorText, at, cancellationToken);

            public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

            public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
