// Servables quick start: serve a versioned model directory from a host, hot-swap it under load,
// and show that no request failed. Runs on embedded defaults: `dotnet run --project samples/Servables.QuickStart`.
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables;
using Servables.QuickStart;

string basePath = Path.Combine(Path.GetTempPath(), $"servables-quickstart-{Guid.NewGuid():N}");
WriteVersion(basePath, 1, weight: 2, bias: 1);

HostApplicationBuilder builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services
    .AddServables(options => options.ManageStateInterval = TimeSpan.FromMilliseconds(50))
    .AddStoragePathServable(
        "linear",
        basePath,
        (services, id, path) => new SimpleLoader<LinearModel>(cancellationToken => LinearModel.ReadAsync(path, cancellationToken)))
    .ConfigureStorage(storage => storage.PollPeriod = TimeSpan.FromMilliseconds(100));

using IHost host = builder.Build();
await host.StartAsync();
var manager = host.Services.GetRequiredService<IServableManager>();
var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
int exitCode = 0;
try
{
    ServableAvailability ready = await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("linear")], TimeSpan.FromSeconds(30));
    if (!ready.IsAvailable)
    {
        throw new InvalidOperationException("The model did not load: " + ready.DescribeUnavailable());
    }

    Console.WriteLine($"Serving {basePath}");
    using (ServableHandle<LinearModel> handle = manager.GetServableHandle<LinearModel>(ServableRequest.Latest("linear")))
    {
        Console.WriteLine($"  {handle.Id}: predict(10) = {handle.Value.Predict(10)}");
    }

    // Callers keep predicting while version 2 is dropped into the folder.
    using var stop = new CancellationTokenSource();
    long requests = 0, failures = 0;
    var perVersion = new long[3];
    Task[] callers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested)
        {
            if (manager.TryGetServableHandle(ServableRequest.Latest("linear"), out ServableHandle<LinearModel> handle))
            {
                using (handle)
                {
                    float y = handle.Value.Predict(10);
                    float expected = handle.Id.Version == 1 ? 21 : 30;
                    Interlocked.Increment(ref perVersion[handle.Id.Version]);
                    if (y != expected)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            }
            else
            {
                Interlocked.Increment(ref failures);
            }

            Interlocked.Increment(ref requests);
            await Task.Yield();
        }
    })).ToArray();

    await Task.Delay(300);
    var clock = Stopwatch.StartNew();
    WriteVersion(basePath, 2, weight: 3, bias: 0);
    ServableAvailability swapped = await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("linear", 2)], TimeSpan.FromSeconds(30));
    Console.WriteLine($"Version 2 available {clock.ElapsedMilliseconds} ms after its folder appeared: {swapped.IsAvailable}");
    while (monitor.GetState(new ServableId("linear", 1))?.State != ServableManagerState.End && clock.Elapsed < TimeSpan.FromSeconds(30))
    {
        await Task.Delay(20);
    }

    await Task.Delay(300);
    await stop.CancelAsync();
    await Task.WhenAll(callers);

    Console.WriteLine($"Requests: {requests:N0} (version 1: {perVersion[1]:N0}, version 2: {perVersion[2]:N0}), failed: {failures}");
    Console.WriteLine("State changes:");
    foreach (ServableState change in monitor.GetEventLog())
    {
        Console.WriteLine($"  {change.Timestamp:HH:mm:ss.fff}  {change}");
    }

    using (ServableHandle<LinearModel> handle = manager.GetServableHandle<LinearModel>(ServableRequest.Latest("linear")))
    {
        Console.WriteLine($"  {handle.Id}: predict(10) = {handle.Value.Predict(10)}");
    }

    if (failures != 0 || !swapped.IsAvailable || perVersion[2] == 0)
    {
        Console.Error.WriteLine("Quick start FAILED: a request failed or the swap did not happen.");
        exitCode = 1;
    }
    else
    {
        Console.WriteLine("Quick start OK: hot swap from version 1 to 2 with zero failed requests.");
    }
}
finally
{
    await host.StopAsync();
    Directory.Delete(basePath, recursive: true);
}

return exitCode;

static void WriteVersion(string basePath, int version, float weight, float bias)
{
    // Write into a temporary folder, then rename: the source never sees a half-written version.
    string staging = Path.Combine(basePath, $".staging-{version}");
    Directory.CreateDirectory(staging);
    File.WriteAllText(Path.Combine(staging, "model.txt"), FormattableString.Invariant($"{weight} {bias}"));
    Directory.Move(staging, Path.Combine(basePath, version.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
