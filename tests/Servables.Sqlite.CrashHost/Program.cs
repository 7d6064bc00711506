// Child process of the crash test. Usage:
//   submit <db> <count>  start a host on the SQLite store, submit <count> JSON requests (prints "ACCEPTED id"),
//                        then keep handling them slowly (prints "HANDLED id") until killed.
//   flood <db> <submitters>  start a host on the SQLite store (4 lanes); <submitters> tasks submit JSON requests without
//                        end (each prints "ACCEPTED id n" once its submit returned) while the lanes handle them
//                        (prints "HANDLED id"), until killed.
//   recover <db>         start a host on the same store, wait until nothing is queued or in progress, print "ALLDONE", exit 0.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables.Async;

string mode = args[0];
string db = args[1];
HostApplicationBuilder builder = Host.CreateApplicationBuilder();
builder.Logging.ClearProviders();
builder.Services.AddAsyncHandler<SlowDoubler>("crash", o =>
{
    o.UseSqliteStore(db);
    o.QueueCapacity = 100_000;
    o.MaxConcurrencyPerWorker = mode == "submit" ? 1 : 4;
});
using IHost host = builder.Build();
SlowDoubler.Pause = mode == "submit" ? TimeSpan.FromMilliseconds(50) : TimeSpan.FromMilliseconds(1);
if (mode != "submit")
{
    SlowDoubler.AllAccepted.TrySetResult(); // recovered requests run at once
}

await host.StartAsync();
IAsyncApiClient client = host.Services.GetRequiredService<IAsyncApiClient>();

if (mode == "submit")
{
    int count = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
    for (int i = 0; i < count; i++)
    {
        string id = await client.SubmitJsonAsync(new { n = i });
        Console.WriteLine($"ACCEPTED {id}");
    }

    SlowDoubler.AllAccepted.TrySetResult();

    await Task.Delay(Timeout.Infinite);
}

if (mode == "flood")
{
    int submitters = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
    int next = -1;
    await Task.WhenAll(Enumerable.Range(0, submitters).Select(_ => Task.Run(async () =>
    {
        while (true)
        {
            int n = Interlocked.Increment(ref next);
            string id = await client.SubmitJsonAsync(new { n });
            Console.WriteLine($"ACCEPTED {id} {n}");
        }
    })));
}

await using (var store = new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = db, ApiName = "crash" }))
{
    DateTime deadline = DateTime.UtcNow.AddSeconds(60);
    while ((await store.GetUnfinishedAsync()).Count > 0)
    {
        if (DateTime.UtcNow > deadline)
        {
            Console.WriteLine("TIMEOUT");
            return 2;
        }

        await Task.Delay(20);
    }
}

Console.WriteLine("ALLDONE");
await host.StopAsync();
return 0;

/// <summary>Doubles "n" after a short pause, so that a kill finds requests queued and in progress.</summary>
/// <remarks>
/// In submit mode nothing is handled before every request was accepted: submits wait for the disk
/// (SQLite syncs each one), and on a slow disk the lanes would otherwise finish the early requests
/// while the late ones are submitted, leaving nothing unfinished for the kill to find.
/// </remarks>
internal sealed class SlowDoubler : IAsyncHandler
{
    public static TaskCompletionSource AllAccepted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static TimeSpan Pause { get; set; } = TimeSpan.FromMilliseconds(50);

    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        await AllAccepted.Task.WaitAsync(cancellationToken);
        await Task.Delay(Pause, cancellationToken);
        int n = payload.Json.GetProperty("n").GetInt32();
        Console.WriteLine($"HANDLED {requestId}");
        return new { n, doubled = n * 2 };
    }
}
