using System.Text;
using Servables.Testing;

namespace Servables.Redis.Tests.Hosting;

/// <summary>One async API served by two host processes (<c>Servables.Redis.Host</c>) through a real Redis: hosts killed with SIGKILL, Redis restarted, a request that kills its hosts.</summary>
/// <remarks>The test process submits and reads through a store of its own, as a front end would; only the child processes run requests.</remarks>
public sealed class HostProcessTests : IAsyncLifetime
{
    private readonly string _prefix = "p" + Guid.NewGuid().ToString("N")[..8];
    private readonly List<RedisHostProcess> _hosts = [];
    private RedisServer? _server;
    private RedisAsyncResultStore? _client;

    public async Task InitializeAsync()
    {
        if (RedisServer.Binary is not null)
        {
            _server = await RedisServer.StartAsync();
            _client = new RedisAsyncResultStore(new RedisAsyncResultStoreOptions { Configuration = _server.Configuration, KeyPrefix = _prefix, ApiName = "work", QueueCapacity = 1_000_000, RunsRequests = false });
        }
    }

    public async Task DisposeAsync()
    {
        foreach (RedisHostProcess host in _hosts)
        {
            host.Dispose();
        }

        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [SkippableFact]
    public async Task TwoHosts_AllRequestsCompleteExactlyOnceInTheStore_SpreadOverBoth()
    {
        RedisAvailable.SkipIfMissing();
        RedisHostProcess a = await StartHostAsync("A", handlerMs: 5, lanes: 4);
        RedisHostProcess b = await StartHostAsync("B", handlerMs: 5, lanes: 4);
        string[] ids = await SubmitAsync(200);

        Dictionary<string, AsyncRequestRecord> done = await WaitForAllAsync(ids, TimeSpan.FromSeconds(60));

        Assert.All(done.Values, r => Assert.Equal(AsyncRequestState.Completed, r.State));
        Assert.Equal(ids.Order(), a.Handled.Concat(b.Handled).Order()); // each handled exactly once, by one host or the other
        Assert.NotEmpty(a.Handled);
        Assert.NotEmpty(b.Handled);
        Assert.Equal((0, 0), (a.DuplicatesHandled, b.DuplicatesHandled));
        Assert.All(ids, id => Assert.Equal(a.Handled.Contains(id) ? "A" : "B", HostOf(done[id])));
    }

    [SkippableFact]
    public async Task OneHostKilledMidWork_EveryRequestStillCompletes()
    {
        RedisAvailable.SkipIfMissing();
        RedisHostProcess a = await StartHostAsync("A", handlerMs: 50, lanes: 4);
        RedisHostProcess b = await StartHostAsync("B", handlerMs: 50, lanes: 4);
        string[] ids = await SubmitAsync(100);
        await Eventually.WaitUntilAsync(() => a.Handled.Count >= 10, TimeSpan.FromSeconds(30), "host A handling some requests");

        a.Kill(); // SIGKILL: what A held (running, and taken ahead of its lanes) goes to B after the visibility timeout (2 s)
        Dictionary<string, AsyncRequestRecord> done = await WaitForAllAsync(ids, TimeSpan.FromSeconds(90));

        Assert.All(done.Values, r => Assert.Equal(AsyncRequestState.Completed, r.State));
        Assert.All(ids, id => Assert.True(a.Handled.Contains(id) || b.Handled.Contains(id), $"{id} was never handled"));
        Assert.All(done.Values, r => Assert.Equal(b.Handled.Contains(r.Id) && !a.Handled.Contains(r.Id) ? "B" : HostOf(r), HostOf(r))); // the stored outcome is a real run's
    }

    [SkippableFact]
    public async Task RedisRestartedMidRun_NothingAcceptedIsLost()
    {
        RedisAvailable.SkipIfMissing();
        RedisHostProcess a = await StartHostAsync("A", handlerMs: 20, lanes: 4);
        RedisHostProcess b = await StartHostAsync("B", handlerMs: 20, lanes: 4);
        string[] first = await SubmitAsync(100);
        await Eventually.WaitUntilAsync(() => a.Handled.Count + b.Handled.Count >= 20, TimeSpan.FromSeconds(30), "the hosts handling some requests");

        await _server!.RestartAsync(TimeSpan.FromSeconds(1)); // SIGKILL; every accepted submit was fsynced to the AOF before it returned
        string[] second = await SubmitAsync(50, from: 100);
        Dictionary<string, AsyncRequestRecord> done = await WaitForAllAsync([.. first, .. second], TimeSpan.FromSeconds(120));

        Assert.Equal(150, done.Count);
        Assert.All(done.Values, r => Assert.Equal(AsyncRequestState.Completed, r.State));
    }

    [SkippableFact]
    public async Task PoisonRequest_ThatKillsEveryHostTakingIt_EndsFailedAfterMaxDeliveries()
    {
        RedisAvailable.SkipIfMissing();
        Assert.True(await _client!.TryAddAsync(Record("poison", "{\"n\":0,\"poison\":true}")));
        string[] others = await SubmitAsync(20);

        // A supervisor: a host that dies is replaced, as an orchestrator would; the hosts use MaxDeliveries = 3.
        int started = 0;
        RedisHostProcess current = await StartHostAsync("H0", handlerMs: 1, lanes: 1);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while ((await _client.GetAsync("poison"))!.State != AsyncRequestState.Failed)
        {
            Assert.True(DateTime.UtcNow < deadline, "the poison request did not fail within 120 s");
            if (current.HasExited)
            {
                current = await StartHostAsync($"H{++started}", handlerMs: 1, lanes: 1);
            }

            await Task.Delay(50);
        }

        AsyncRequestRecord poison = (await _client.GetAsync("poison"))!;
        Assert.Contains("handed to a host 3 times without an outcome", poison.Error, StringComparison.Ordinal);
        Assert.Equal(3, _hosts.Sum(h => h.Poisoned));
        Dictionary<string, AsyncRequestRecord> done = await WaitForAllAsync(others, TimeSpan.FromSeconds(60));
        Assert.All(done.Values, r => Assert.Equal(AsyncRequestState.Completed, r.State));
    }

    private async Task<string[]> SubmitAsync(int count, int from = 0)
    {
        var ids = new string[count];
        for (int i = 0; i < count; i++)
        {
            ids[i] = $"r{from + i}";
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    // A retry finds the id taken only if the attempt before it was stored after all.
                    Assert.True(await _client!.TryAddAsync(Record(ids[i], $"{{\"n\":{from + i}}}")) || attempt > 0);
                    break;
                }
                catch (StackExchange.Redis.RedisConnectionException) when (attempt < 100)
                {
                    await Task.Delay(100); // refused at once while the client reconnects: submit again, as a caller told "store unavailable" does
                }
            }
        }

        return ids;
    }

    private async Task<Dictionary<string, AsyncRequestRecord>> WaitForAllAsync(IReadOnlyList<string> ids, TimeSpan timeout)
    {
        var done = new Dictionary<string, AsyncRequestRecord>();
        using var limit = new CancellationTokenSource(timeout);
        foreach (string id in ids)
        {
            while (true)
            {
                Task<AsyncRequestStatus?> finished = _client!.WhenFinishedAsync(id, limit.Token);
                AsyncRequestRecord? record = null;
                try
                {
                    record = await _client.GetAsync(id);
                }
                catch (StackExchange.Redis.RedisConnectionException)
                {
                    // Redis restarting: read again
                }

                if (record is { State: AsyncRequestState.Completed or AsyncRequestState.Failed })
                {
                    done[id] = record;
                    break;
                }

                Assert.False(limit.IsCancellationRequested, $"{id} did not finish within {timeout}; {done.Count} of {ids.Count} did.");
                await Task.WhenAny(finished, Task.Delay(500));
            }
        }

        return done;
    }

    private async Task<RedisHostProcess> StartHostAsync(string name, int handlerMs, int lanes)
    {
        string dll = Path.Combine(AppContext.BaseDirectory.Replace("Servables.Redis.Tests", "Servables.Redis.Host", StringComparison.Ordinal), "Servables.Redis.Host.dll");
        var host = new RedisHostProcess(dll, _server!.Configuration, _prefix, name, handlerMs, lanes);
        _hosts.Add(host);
        await host.WaitReadyAsync();
        return host;
    }

    private static string HostOf(AsyncRequestRecord record) => System.Text.Json.JsonDocument.Parse(record.ResultJson!).RootElement.GetProperty("host").GetString()!;

    private static AsyncRequestRecord Record(string id, string json) => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "application/json",
        Payload = Encoding.UTF8.GetBytes(json),
        SubmittedAt = DateTimeOffset.UtcNow,
        UpdatedAt = DateTimeOffset.UtcNow,
    };
}
