using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables.Async;
using Servables.Testing;

namespace Servables.Benchmarks.Async;

/// <summary>
/// <c>--redis-hosts [--seconds N] [--lanes L] [--handler-ms M] [--callers C] [--spin|--block] [--fsync always|everysec]</c>: round trips
/// (submit, the handler, wait for the stored result) through one async API, with the same handler (M ms, 1 by default: asleep on a timer,
/// spinning a core with --spin, or blocking its thread in Thread.Sleep with --block) and L lanes per host (4): in one process on the in-memory store, then on Redis served by 1 and by 2
/// <c>Servables.Redis.Host</c> processes, alternating 1, 2, 1, 2 hosts.
/// </summary>
/// <remarks>
/// C callers (16) in this process each run round trips back to back for N seconds (10) after a 6-second warm-up (the host processes are started for each round and compile their hot paths first), through
/// an API host of their own that only submits and waits (<see cref="RedisAsyncResultStoreOptions.RunsRequests"/> false),
/// as a front end would. Redis runs on 127.0.0.1 with an AOF flushed <c>everysec</c> unless <c>--fsync always</c>.
/// </remarks>
public static class RedisHostsLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        TimeSpan round = LoadOptions.Seconds(args, 10);
        int lanes = LoadOptions.Int(args, "--lanes", 4);
        int handlerMs = LoadOptions.Int(args, "--handler-ms", 1);
        int callers = LoadOptions.Int(args, "--callers", 16);
        string wait = args.Contains("--spin") ? "spin" : args.Contains("--block") ? "block" : "sleep";
        int at = Array.IndexOf(args, "--fsync");
        string fsync = at >= 0 ? args[at + 1] : "everysec";
        if (RedisServer.Binary is null)
        {
            await Console.Error.WriteLineAsync(RedisServer.MissingReason);
            return 2;
        }

        Console.WriteLine($"handler {handlerMs} ms ({wait}), {lanes} lanes per host, {callers} callers, {round.TotalSeconds:0} s per round, AOF fsync {fsync}");
        double inMemory = await InMemoryAsync(lanes, handlerMs, wait, callers, round);
        await using RedisServer server = await RedisServer.StartAsync(fsync);
        string hostDll = Path.Combine(AppContext.BaseDirectory.Replace(Path.Combine("benchmarks", "Servables.Benchmarks"), Path.Combine("tests", "Servables.Redis.Host"), StringComparison.Ordinal), "Servables.Redis.Host.dll");
        var rates = new Dictionary<int, List<double>> { [1] = [], [2] = [] };
        int phase = 0;
        foreach (int hosts in new[] { 1, 2, 1, 2 })
        {
            rates[hosts].Add(await RedisAsync(server, hostDll, $"bench{phase++}", hosts, lanes, handlerMs, wait, callers, round));
        }

        double one = rates[1].Average();
        double two = rates[2].Average();
        Console.WriteLine($"mean: in-memory {inMemory:N0}/s; Redis 1 host {one:N0}/s ({one / inMemory:F2}x in-memory), 2 hosts {two:N0}/s: {two / one:F2}x one host");
        return 0;
    }

    private static async Task<double> InMemoryAsync(int lanes, int handlerMs, string wait, int callers, TimeSpan round)
    {
        if (wait == "block")
        {
            ThreadPool.SetMinThreads(lanes + 8, lanes + 8); // as the host processes do
        }

        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddAsyncHandler<PauseHandler>(o =>
        {
            (o.MaxConcurrencyPerWorker, o.QueueCapacity) = (lanes, 100_000);
            o.Config["ms"] = handlerMs.ToString(CultureInfo.InvariantCulture);
            o.Config["wait"] = wait;
        });
        using IHost host = builder.Build();
        await host.StartAsync();
        double rate = await MeasureAsync("in-memory store, 1 process", host.Services.GetRequiredService<IAsyncApiClient>(), callers, round);
        await host.StopAsync();
        return rate;
    }

    private static async Task<double> RedisAsync(RedisServer server, string hostDll, string prefix, int hosts, int lanes, int handlerMs, string wait, int callers, TimeSpan round)
    {
        var children = new List<RedisHostProcess>();
        try
        {
            for (int i = 0; i < hosts; i++)
            {
                children.Add(new RedisHostProcess(hostDll, server.Configuration, prefix, $"H{i}", handlerMs, lanes, wait, quiet: true));
            }

            await Task.WhenAll(children.Select(c => c.WaitReadyAsync()));
            HostApplicationBuilder builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddAsyncHandler<PauseHandler>("work", o =>
            {
                o.UseRedis(server.Configuration, r => (r.KeyPrefix, r.RunsRequests) = (prefix, false));
                o.QueueCapacity = 1_000_000;
                (o.Config["ms"], o.Config["wait"]) = ("0", "sleep"); // never runs: this host only submits and waits
            });
            using IHost front = builder.Build();
            await front.StartAsync();
            double rate = await MeasureAsync($"Redis, {hosts} host process(es)", front.Services.GetRequiredKeyedService<IAsyncApiClient>("work"), callers, round);
            await front.StopAsync();
            return rate;
        }
        finally
        {
            foreach (RedisHostProcess child in children)
            {
                child.Stop();
                child.Dispose();
            }
        }
    }

    private static async Task<double> MeasureAsync(string what, IAsyncApiClient client, int callers, TimeSpan round)
    {
        await RoundTrips.RunAsync(client, callers, TimeSpan.FromSeconds(6)); // warm-up: the fresh host processes compile their hot paths (tiered JIT) first
        (long trips, TimeSpan elapsed, double p50, double p99) = await RoundTrips.RunAsync(client, callers, round);
        double rate = trips / elapsed.TotalSeconds;
        Console.WriteLine($"{what,-32} {rate,9:N0} round trips/s  p50 {p50:F2} ms  p99 {p99:F2} ms");
        return rate;
    }

    /// <summary>The handler of the in-memory phase: the same pause as <c>Servables.Redis.Host</c>'s handler.</summary>
    public sealed class PauseHandler(AsyncHandlerConfig config) : IAsyncHandler
    {
        private readonly TimeSpan _pause = TimeSpan.FromMilliseconds(int.Parse(config["ms"] ?? "0", CultureInfo.InvariantCulture));
        private readonly string _wait = config["wait"]!;

        public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
        {
            if (_wait == "block")
            {
                Thread.Sleep(_pause);
            }
            else if (_wait == "spin")
            {
                long until = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(_pause.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
                while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
                {
                    Thread.SpinWait(20);
                }
            }
            else
            {
                await Task.Delay(_pause, cancellationToken);
            }

            return new { n = 0 };
        }
    }
}
