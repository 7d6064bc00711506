// A host process of one async API on Redis, for the multi-host tests and the benchmark. Usage:
//   <redis configuration> <key prefix> <host name> <handler ms> <lanes> [sleep|spin|block] [loud|quiet]
// Serves API "work" with <lanes> lanes (a visibility timeout of 2 s, at most 3 deliveries). The handler waits
// <handler ms> (asleep on a timer; spinning a core with "spin"; blocking its thread in Thread.Sleep with "block"), prints "HANDLED <id> <host name>" (not with "quiet") and returns
// {"n": n, "host": name}. A request whose JSON has "poison": true kills the process (SIGKILL) instead, as a
// request that crashes its host would. Prints "READY" once started; runs until killed or stdin closes.
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables.Async;

string configuration = args[0];
string prefix = args[1];
string name = args[2];
int handlerMs = int.Parse(args[3], CultureInfo.InvariantCulture);
int lanes = int.Parse(args[4], CultureInfo.InvariantCulture);
string wait = args.Length > 5 ? args[5] : "sleep"; // sleep | spin | block
bool quiet = args.Length > 6 && args[6] == "quiet";

HostApplicationBuilder builder = Host.CreateApplicationBuilder();
builder.Logging.ClearProviders();
builder.Services.AddAsyncHandler<WorkHandler>("work", o =>
{
    o.UseRedis(configuration, r =>
    {
        r.KeyPrefix = prefix;
        r.VisibilityTimeout = TimeSpan.FromSeconds(2);
        r.MaxDeliveries = 3;
        r.PollInterval = TimeSpan.FromMilliseconds(200);
    });
    o.QueueCapacity = 1_000_000;
    o.MaxConcurrencyPerWorker = lanes;
    o.StoreRetries = 10; // ride out a Redis restart: 0.2 s doubling up to ~3 min in all
    o.Config["host"] = name;
    o.Config["ms"] = handlerMs.ToString(CultureInfo.InvariantCulture);
    o.Config["wait"] = wait;
    o.Config["quiet"] = quiet ? "1" : "0";
});
if (wait == "block")
{
    ThreadPool.SetMinThreads(lanes + 8, lanes + 8); // each lane blocks a pool thread for the pause
}

using IHost host = builder.Build();
await host.StartAsync();
Console.WriteLine("READY");
await Task.Run(() => Console.In.ReadToEnd()); // the parent closes stdin (or kills us)
await host.StopAsync();

/// <summary>Waits, then returns which host ran the request; a poison request kills the host.</summary>
internal sealed class WorkHandler(AsyncHandlerConfig config) : IAsyncHandler
{
    private readonly string _host = config["host"]!;
    private readonly TimeSpan _pause = TimeSpan.FromMilliseconds(int.Parse(config["ms"]!, CultureInfo.InvariantCulture));
    private readonly string _wait = config["wait"]!;
    private readonly bool _quiet = config["quiet"] == "1";

    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        if (payload.Json.TryGetProperty("poison", out System.Text.Json.JsonElement poison) && poison.GetBoolean())
        {
            Console.WriteLine($"POISONED {requestId} {_host}");
            Process.GetCurrentProcess().Kill();
        }

        if (_wait == "block")
        {
            Thread.Sleep(_pause); // a blocking call (the kernel's precise sleep, unlike the timer's 4 ms ticks on some VMs)
        }
        else if (_wait == "spin")
        {
            long until = Stopwatch.GetTimestamp() + (long)(_pause.TotalSeconds * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < until)
            {
                Thread.SpinWait(20);
            }
        }
        else
        {
            await Task.Delay(_pause, cancellationToken);
        }

        if (!_quiet)
        {
            Console.WriteLine($"HANDLED {requestId} {_host}");
        }

        return new { n = payload.Json.TryGetProperty("n", out System.Text.Json.JsonElement n) ? n.GetInt32() : 0, host = _host };
    }
}
