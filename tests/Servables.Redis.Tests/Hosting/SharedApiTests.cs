using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Redis.Tests.Hosting;

/// <summary>One async API served by two hosts in this process, each with its own connection, through a real Redis: the paths a host app takes.</summary>
public sealed class SharedApiTests : IAsyncLifetime
{
    private readonly string _prefix = "t" + Guid.NewGuid().ToString("N")[..8];
    private RedisServer? _server;

    public async Task InitializeAsync()
    {
        if (RedisServer.Binary is not null)
        {
            _server = await RedisServer.StartAsync();
        }
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [SkippableFact]
    public async Task TwoHosts_EveryRequestCompletesOnce_SpreadOverBoth_AnyHostAnswers()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost a = await StartHostAsync("A", lanes: 2);
        await using AsyncHost b = await StartHostAsync("B", lanes: 2);
        var ids = new List<string>();
        for (int i = 0; i < 60; i++)
        {
            ids.Add(await (i % 2 == 0 ? a : b).Client("work").SubmitJsonAsync(new { n = i, ms = 10 }));
        }

        var ranOn = new List<string>();
        for (int i = 0; i < ids.Count; i++)
        {
            AsyncRequestStatus done = await (i % 2 == 0 ? b : a).Client("work").WaitForCompletionAsync(ids[i], TimeSpan.FromSeconds(30)); // the other host waits
            Assert.Equal(AsyncRequestState.Completed, done.State);
            ranOn.Add(System.Text.Json.JsonDocument.Parse(done.ResultJson!).RootElement.GetProperty("host").GetString()!);
        }

        Assert.Contains("A", ranOn);
        Assert.Contains("B", ranOn);
        Assert.Equal(60, SpreadHandler.Runs.Count(r => r.Prefix == _prefix));
        Assert.Equal(ids.Order(), SpreadHandler.Runs.Where(r => r.Prefix == _prefix).Select(r => r.Id).Order()); // each ran once
    }

    [SkippableFact]
    public async Task WaitOnAnotherHost_IsWokenByTheFinish_NotByItsRecheck()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost runner = await StartHostAsync("A", lanes: 1);
        await using AsyncHost waiter = await StartHostAsync("B", lanes: 1, takesWork: false);
        var gate = SpreadHandler.Gate(_prefix);
        string id = await waiter.Client("work").SubmitJsonAsync(new { n = 1, gate = true });
        await Eventually.WaitUntilAsync(async () => (await waiter.Client("work").GetStatusAsync(id)).State == AsyncRequestState.InProgress, what: "the request running on A");

        ValueTask<AsyncRequestStatus> waiting = waiter.Client("work").WaitForCompletionAsync(id, TimeSpan.FromSeconds(30));
        await Task.Delay(50); // let the wait register and read the status once
        var released = System.Diagnostics.Stopwatch.StartNew();
        gate.TrySetResult();
        AsyncRequestStatus done = await waiting;

        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.True(released.Elapsed < TimeSpan.FromSeconds(1.5), $"The wait ended {released.Elapsed} after the finish: it was not woken (a status recheck comes after 2 s).");
    }

    [SkippableFact]
    public async Task CancelOnAnotherHost_ReachesTheRunningRequest_AndAQueuedOneNeverRuns()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost runner = await StartHostAsync("A", lanes: 1);
        await using AsyncHost other = await StartHostAsync("B", lanes: 1, takesWork: false);
        string running = await other.Client("work").SubmitJsonAsync(new { n = 1, block = true });
        await Eventually.WaitUntilAsync(async () => (await other.Client("work").GetStatusAsync(running)).State == AsyncRequestState.InProgress, what: "the blocking request running on A");
        string queued = await other.Client("work").SubmitJsonAsync(new { n = 2 });
        string behind = await other.Client("work").SubmitJsonAsync(new { n = 3 });

        Assert.True(await other.Client("work").CancelAsync(behind)); // queued (A's one lane is busy): withdrawn
        Assert.True(await other.Client("work").CancelAsync(running)); // in progress on A: A cancels its token
        AsyncRequestStatus cancelled = await other.Client("work").WaitForCompletionAsync(running, TimeSpan.FromSeconds(30));
        AsyncRequestStatus next = await runner.Client("work").WaitForCompletionAsync(queued, TimeSpan.FromSeconds(30));
        AsyncRequestStatus withdrawn = await runner.Client("work").GetStatusAsync(behind);

        Assert.Equal((AsyncRequestState.Failed, "Cancelled by the caller while it ran."), (cancelled.State, cancelled.Error));
        Assert.Equal(AsyncRequestState.Completed, next.State);
        Assert.Equal((AsyncRequestState.Failed, "Cancelled by the caller before it ran."), (withdrawn.State, withdrawn.Error));
        Assert.DoesNotContain(SpreadHandler.Runs, r => r.Id == behind);
        Assert.False(await other.Client("work").CancelAsync(running)); // finished: nothing to cancel
    }

    [SkippableFact]
    public async Task QueueCapacity_CountsWaitingRequestsOfEveryHost()
    {
        RedisAvailable.SkipIfMissing();
        await using var store = NewStore(queueCapacity: 2);
        Assert.True(await store.TryAddAsync(Record("q1")));
        Assert.True(await store.TryAddAsync(Record("q2")));
        var full = await Assert.ThrowsAsync<AsyncQueueFullException>(async () => await store.TryAddAsync(Record("q3")));
        Assert.Equal(2, full.Capacity);

        await using var host = NewStore(queueCapacity: 2);
        IReadOnlyList<AsyncRequestRecord> taken = await host.TakeAsync(1, CancellationToken.None); // handed to a host: no longer waiting
        Assert.Equal(["q1"], taken.Select(r => r.Id));
        Assert.True(await store.TryAddAsync(Record("q3")));
        Assert.True(await store.TryCompleteAsync("q2", "1", DateTimeOffset.UtcNow)); // finished while waiting: room again
        Assert.True(await store.TryAddAsync(Record("q4")));
        await Assert.ThrowsAsync<AsyncQueueFullException>(async () => await store.TryAddAsync(Record("q5")));
    }

    [SkippableFact]
    public async Task HostThatStopsRenewing_LosesItsRequest_AndAfterMaxDeliveriesItFails()
    {
        RedisAvailable.SkipIfMissing();
        await using var client = NewStore();
        Assert.True(await client.TryAddAsync(Record("poison")));
        var hosts = new List<RedisAsyncResultStore>();
        try
        {
            for (int delivery = 1; delivery <= 2; delivery++)
            {
                RedisAsyncResultStore host = NewStore(visibility: TimeSpan.FromMilliseconds(200), maxDeliveries: 2);
                hosts.Add(host); // never attached: it does not renew its hold, as a host that died
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                IReadOnlyList<AsyncRequestRecord> taken = await host.TakeAsync(1, limit.Token);
                Assert.Equal(("poison", AsyncRequestState.InQueue), (taken.Single().Id, taken.Single().State)); // never marked in progress: no lane ran it
                Assert.Equal(AsyncRequestState.InQueue, (await client.GetAsync("poison"))!.State);
            }

            RedisAsyncResultStore last = NewStore(visibility: TimeSpan.FromMilliseconds(200), maxDeliveries: 2);
            hosts.Add(last);
            using var stop = new CancellationTokenSource();
            Task<IReadOnlyList<AsyncRequestRecord>> third = last.TakeAsync(1, stop.Token).AsTask();
            await Eventually.WaitUntilAsync(async () => (await client.GetAsync("poison"))!.State == AsyncRequestState.Failed, what: "the third delivery failing it");
            AsyncRequestRecord failed = (await client.GetAsync("poison"))!;
            Assert.Contains("handed to a host 2 times without an outcome", failed.Error, StringComparison.Ordinal);
            Assert.False(third.IsCompleted); // nothing handed out
            await stop.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
            Assert.False(await client.TryCompleteAsync("poison", "1", DateTimeOffset.UtcNow)); // the first outcome stays
        }
        finally
        {
            foreach (RedisAsyncResultStore host in hosts)
            {
                await host.DisposeAsync();
            }
        }
    }

    [SkippableFact]
    public async Task RedisDown_SubmitThrowsTheStoreException_NothingHalfWritten_HealthReportsIt_ThenItRecovers()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost host = await StartHostAsync("A", lanes: 1, health: true);
        IAsyncApiClient client = host.Client("work");
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitJsonAsync(new { n = 0 }), TimeSpan.FromSeconds(30))).State);
        HealthCheckService health = host.Host.Services.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync()).Status);

        Task restart = _server!.RestartAsync(TimeSpan.FromSeconds(2));
        await Eventually.WaitUntilAsync(async () => (await health.CheckHealthAsync()).Status == HealthStatus.Unhealthy, what: "the health check seeing Redis down");
        var refused = await Assert.ThrowsAsync<AsyncStoreUnavailableException>(async () => await client.SubmitJsonAsync(new { n = 1 }, requestId: "while-down"));
        Assert.Contains("while-down", refused.Message, StringComparison.Ordinal);
        await restart;

        await Eventually.WaitUntilAsync(async () => (await health.CheckHealthAsync()).Status == HealthStatus.Healthy, TimeSpan.FromSeconds(30), "the health check seeing Redis back");
        Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync("while-down")).State);
        string after = await client.SubmitJsonAsync(new { n = 2 });
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(after, TimeSpan.FromSeconds(30))).State);
    }

    [SkippableFact]
    public async Task HealthCheck_ReadsTheSharedQueue_NotThisHostsOwn()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost front = await AsyncHost.StartAsync(services =>
        {
            services.AddAsyncHandler<SpreadHandler>("work", o =>
            {
                o.UseRedis(_server!.Configuration, r =>
                {
                    r.KeyPrefix = _prefix;
                    r.RunsRequests = false; // nobody runs them: they wait
                });
                o.QueueCapacity = 10;
                o.Config["prefix"] = _prefix;
                o.Config["takes"] = "0";
            });
            services.AddHealthChecks().AddAsyncApis();
        });
        HealthCheckService health = front.Host.Services.GetRequiredService<HealthCheckService>();
        for (int i = 0; i < 9; i++)
        {
            await front.Client("work").SubmitJsonAsync(new { n = i });
        }

        HealthReportEntry entry = (await health.CheckHealthAsync()).Entries["async-api:work"];
        Assert.Equal((HealthStatus.Degraded, 9, 10), (entry.Status, (int)entry.Data["queue_depth"], (int)entry.Data["capacity"]));
    }

    [SkippableFact]
    public async Task HostThatStops_LeavesTheGroup_UnlessItStillHoldsARequest()
    {
        RedisAvailable.SkipIfMissing();
        await using var client = NewStore();
        Assert.True(await client.TryAddAsync(Record("a")));
        Assert.True(await client.TryAddAsync(Record("b")));
        RedisAsyncResultStore done = NewStore(), holding = NewStore();
        string doneName = done.Consumer, holdingName = holding.Consumer;
        Assert.Equal(["a"], (await done.TakeAsync(1, CancellationToken.None)).Select(r => r.Id));
        Assert.True(await done.TryCompleteAsync("a", "1", DateTimeOffset.UtcNow));
        Assert.Equal(["b"], (await holding.TakeAsync(1, CancellationToken.None)).Select(r => r.Id));

        await done.DisposeAsync();
        await holding.DisposeAsync();

        await using StackExchange.Redis.ConnectionMultiplexer redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(_server!.Configuration);
        string[] consumers = [.. (await redis.GetDatabase().StreamConsumerInfoAsync($"{{{_prefix}:default}}:q", RedisAsyncResultStore.Group)).Select(c => c.Name)];
        Assert.DoesNotContain(doneName, consumers);
        Assert.Contains(holdingName, consumers); // its request stays pending under it, for another host to take over
    }

    [SkippableFact]
    public async Task HostThatStops_HandsItsCancelledRequestBack_AndAnotherHostRunsItAtOnce()
    {
        RedisAvailable.SkipIfMissing();
        AsyncHost a = await StartHostAsync("A", lanes: 1);
        string id;
        try
        {
            id = await a.Client("work").SubmitJsonAsync(new { gate = true });
            await Eventually.WaitUntilAsync(async () => (await a.Client("work").GetStatusAsync(id)).State == AsyncRequestState.InProgress, what: "host A running the request");
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }

        await using AsyncHost b = await StartHostAsync("B", lanes: 1);
        await a.Host.StopAsync(new CancellationToken(canceled: true)); // out of shutdown time at once: A cancels the handler
        await a.DisposeAsync();

        // B takes it without waiting for the visibility timeout (a minute here), and runs it to the end.
        await Eventually.WaitUntilAsync(() => Task.FromResult(SpreadHandler.Runs.Count(r => r == (_prefix, id)) == 2), TimeSpan.FromSeconds(15), "host B running the request A handed back");
        SpreadHandler.Gate(_prefix).TrySetResult();
        AsyncRequestStatus done = await b.Client("work").WaitForCompletionAsync(id, TimeSpan.FromSeconds(15));
        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("B", System.Text.Json.JsonDocument.Parse(done.ResultJson!).RootElement.GetProperty("host").GetString());
    }

    [SkippableFact]
    public async Task Release_HandsBackOnlyWhatThisHostHolds_AndTheQueueCountsItOnce()
    {
        RedisAvailable.SkipIfMissing();
        await using var client = NewStore(queueCapacity: 1);
        await using RedisAsyncResultStore host = NewStore(queueCapacity: 1, visibility: TimeSpan.FromMilliseconds(300));
        await using RedisAsyncResultStore other = NewStore(queueCapacity: 1, visibility: TimeSpan.FromMilliseconds(300));
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        // Handed back: in_queue again, and counted in the queue once, so a cancel then frees its place.
        Assert.True(await client.TryAddAsync(Record("back")));
        Assert.Equal(["back"], (await host.TakeAsync(1, limit.Token)).Select(r => r.Id));
        Assert.True(await host.TryMarkInProgressAsync("back", DateTimeOffset.UtcNow));
        host.Release("back");
        await Eventually.WaitUntilAsync(async () => (await client.GetAsync("back"))!.State == AsyncRequestState.InQueue, what: "the request queued again");
        Assert.Equal(1, await client.CountWaitingAsync());
        await Assert.ThrowsAsync<AsyncQueueFullException>(async () => await client.TryAddAsync(Record("over"))); // it waits again
        Assert.Equal(AsyncSharedCancel.Withdrawn, await client.CancelAsync("back", "Cancelled by the caller before it ran.", DateTimeOffset.UtcNow, limit.Token));
        Assert.Equal(0, await client.CountWaitingAsync());
        Assert.True(await client.TryAddAsync(Record("next"))); // its place is free again
        await Assert.ThrowsAsync<AsyncQueueFullException>(async () => await client.TryAddAsync(Record("full")));

        // Taken over by another host meanwhile: the first host's late release hands nothing back.
        Assert.Equal(["next"], (await host.TakeAsync(1, limit.Token)).Select(r => r.Id));
        IReadOnlyList<AsyncRequestRecord> takenOver = await other.TakeAsync(1, limit.Token); // after the 300 ms visibility timeout
        Assert.Equal(["next"], takenOver.Select(r => r.Id));
        host.Release("next");
        await host.DisposeAsync(); // waits for the hand-back
        Assert.True(await other.TryCompleteAsync("next", "1", DateTimeOffset.UtcNow));
        Assert.Equal(AsyncRequestState.Completed, (await client.GetAsync("next"))!.State);
        Assert.True(await client.TryAddAsync(Record("after"))); // nothing was queued twice
    }

    [SkippableFact]
    public async Task TakeOver_DeletesTheConsumersOfDeadHosts_OnceTheyHoldNothing()
    {
        RedisAvailable.SkipIfMissing();
        await using var client = NewStore();
        TimeSpan visibility = TimeSpan.FromMilliseconds(300);
        RedisAsyncResultStore deadIdle = NewStore(visibility: visibility), deadHolding = NewStore(visibility: visibility); // never attached: no renewals, as hosts that died
        try
        {
            using (var looked = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
            {
                await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await deadIdle.TakeAsync(1, looked.Token)); // a consumer now, with nothing
            }

            Assert.True(await client.TryAddAsync(Record("orphan")));
            Assert.Equal(["orphan"], (await deadHolding.TakeAsync(1, CancellationToken.None)).Select(r => r.Id));
            await using RedisAsyncResultStore survivor = NewStore(visibility: visibility);
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            Assert.Equal(["orphan"], (await survivor.TakeAsync(1, limit.Token)).Select(r => r.Id)); // taken over

            await using StackExchange.Redis.ConnectionMultiplexer redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(_server!.Configuration);
            string[] consumers = [.. (await redis.GetDatabase().StreamConsumerInfoAsync($"{{{_prefix}:default}}:q", RedisAsyncResultStore.Group)).Select(c => c.Name.ToString())];
            Assert.Equal([survivor.Consumer], consumers);
        }
        finally
        {
            await deadIdle.DisposeAsync();
            await deadHolding.DisposeAsync();
        }
    }

    [SkippableFact]
    public async Task Renew_LeavesAnEntryAnotherHostTookOver_WithThatHost()
    {
        RedisAvailable.SkipIfMissing();
        await using var client = NewStore();
        await using RedisAsyncResultStore slow = NewStore(visibility: TimeSpan.FromMilliseconds(300)); // not attached: renews only when told
        await using RedisAsyncResultStore other = NewStore(visibility: TimeSpan.FromMilliseconds(300));
        Assert.True(await client.TryAddAsync(Record("x")));
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(["x"], (await slow.TakeAsync(1, limit.Token)).Select(r => r.Id));
        Assert.Equal(["x"], (await other.TakeAsync(1, limit.Token)).Select(r => r.Id)); // slow was silent past 300 ms

        await slow.RenewOnceAsync(); // it wakes up: its renewal must not claim the entry back
        Assert.Equal(0, slow.HeldCount);
        await using StackExchange.Redis.ConnectionMultiplexer redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(_server!.Configuration);
        StackExchange.Redis.StreamPendingMessageInfo pending = Assert.Single(await redis.GetDatabase().StreamPendingMessagesAsync($"{{{_prefix}:default}}:q", RedisAsyncResultStore.Group, 10, StackExchange.Redis.RedisValue.Null));
        Assert.Equal(other.Consumer, pending.ConsumerName.ToString());

        slow.Release("x"); // forgotten: hands nothing back
        await other.RenewOnceAsync();
        Assert.Equal(1, other.HeldCount);
        Assert.True(await other.TryCompleteAsync("x", "1", DateTimeOffset.UtcNow));
    }

    [SkippableFact]
    public async Task TwoAppsOnOneRedis_KeyPrefixesKeepTheirRequestsApart()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost mine = await StartHostAsync("A", lanes: 1);
        string otherPrefix = _prefix + "-other";
        await using AsyncHost other = await AsyncHost.StartAsync(services => services.AddAsyncHandler<SpreadHandler>("work", o =>
        {
            o.UseRedis(_server!.Configuration, r => r.KeyPrefix = otherPrefix);
            (o.Config["host"], o.Config["prefix"], o.Config["takes"]) = ("other", otherPrefix, "1");
        }));

        string id = await mine.Client("work").SubmitJsonAsync(new { n = 1 }, requestId: "same-id");
        Assert.Equal("same-id", await other.Client("work").SubmitJsonAsync(new { n = 2 }, requestId: "same-id")); // no clash

        AsyncRequestStatus here = await mine.Client("work").WaitForCompletionAsync(id, TimeSpan.FromSeconds(30));
        AsyncRequestStatus there = await other.Client("work").WaitForCompletionAsync(id, TimeSpan.FromSeconds(30));
        Assert.Contains("\"A\"", here.ResultJson, StringComparison.Ordinal);
        Assert.Contains("\"other\"", there.ResultJson, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Submit_OverMaxPayloadBytes_IsRefusedBeforeRedis()
    {
        RedisAvailable.SkipIfMissing();
        await using AsyncHost host = await AsyncHost.StartAsync(services => services.AddAsyncHandler<SpreadHandler>("work", o =>
        {
            o.UseRedis(_server!.Configuration, r => r.KeyPrefix = _prefix);
            o.MaxPayloadBytes = 16;
            (o.Config["host"], o.Config["prefix"], o.Config["takes"]) = ("A", _prefix, "1");
        }));

        var refused = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await host.Client("work").SubmitJsonAsync(new { n = 1, padding = new string('x', 32) }, requestId: "too-big"));
        Assert.Contains("MaxPayloadBytes", refused.Message, StringComparison.Ordinal);
        Assert.Equal(AsyncRequestState.NotFound, (await host.Client("work").GetStatusAsync("too-big")).State);
    }

    [Fact]
    public void UseRedis_InvalidOptions_AreRefusedNamingThem()
    {
        var options = new AsyncApiOptions();
        var error = Assert.Throws<ArgumentException>(() => options.UseRedis("localhost:1", r => { r.KeyPrefix = "a{b}"; r.VisibilityTimeout = TimeSpan.FromMilliseconds(5); r.MaxDeliveries = 0; }));
        Assert.Contains("KeyPrefix", error.Message, StringComparison.Ordinal);
        Assert.Contains("VisibilityTimeout", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxDeliveries", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => options.UseRedis(""));
    }

    private Task<AsyncHost> StartHostAsync(string name, int lanes, bool takesWork = true, bool health = false) => AsyncHost.StartAsync(services =>
    {
        services.AddAsyncHandler<SpreadHandler>("work", o =>
        {
            o.UseRedis(_server!.Configuration, r =>
            {
                r.KeyPrefix = _prefix;
                r.PollInterval = TimeSpan.FromMilliseconds(50);
                r.RunsRequests = takesWork;
            });
            o.MaxConcurrencyPerWorker = lanes;
            o.Config["host"] = name;
            o.Config["prefix"] = _prefix;
            o.Config["takes"] = takesWork ? "1" : "0";
            o.StoreRetries = 1;
            o.StoreRetryDelay = TimeSpan.FromMilliseconds(50);
        });
        if (health)
        {
            services.AddHealthChecks().AddAsyncApis(storeProbeTimeout: TimeSpan.FromSeconds(2));
        }
    });

    private RedisAsyncResultStore NewStore(int queueCapacity = 1024, TimeSpan? visibility = null, int maxDeliveries = 5) => new(new RedisAsyncResultStoreOptions
    {
        Configuration = _server!.Configuration,
        KeyPrefix = _prefix,
        QueueCapacity = queueCapacity,
        VisibilityTimeout = visibility ?? TimeSpan.FromMinutes(1),
        MaxDeliveries = maxDeliveries,
        PollInterval = TimeSpan.FromMilliseconds(20),
    });

    private static AsyncRequestRecord Record(string id) => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "application/json",
        Payload = Encoding.UTF8.GetBytes("{\"n\":1}"),
        SubmittedAt = DateTimeOffset.UtcNow,
        UpdatedAt = DateTimeOffset.UtcNow,
    };
}

/// <summary>
/// Returns which host ran the request; waits on a gate ("gate"), or until cancelled ("block"). A host with config "takes"
/// = 0 only submits and waits: its API must never construct the handler (the constructor throws there).
/// </summary>
public sealed class SpreadHandler(AsyncHandlerConfig config) : IAsyncHandler
{
    private static readonly ConcurrentDictionary<string, TaskCompletionSource> Gates = new();

    private readonly bool _runs = config["takes"] == "1" ? true : throw new InvalidOperationException("A host whose store runs no requests constructed its handler.");

    public static ConcurrentQueue<(string Prefix, string Id)> Runs { get; } = new();

    public static TaskCompletionSource Gate(string prefix) => Gates.GetOrAdd(prefix, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        string prefix = config["prefix"]!;
        Assert.True(_runs);
        Runs.Enqueue((prefix, requestId));
        if (payload.Json.TryGetProperty("gate", out _))
        {
            await Gate(prefix).Task.WaitAsync(cancellationToken);
        }

        if (payload.Json.TryGetProperty("block", out _))
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (payload.Json.TryGetProperty("ms", out System.Text.Json.JsonElement ms))
        {
            await Task.Delay(ms.GetInt32(), cancellationToken);
        }

        return new { host = config["host"] };
    }
}
