using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Servables.AspNetCore;
using Servables.Async;
using Servables.Benchmarks.Onnx;
using Servables.Onnx;
using Servables.Testing.Onnx;
using Spectre.Console;

namespace Servables.Benchmarks.Load;

/// <summary>
/// <c>--load [--target servable|async|http] [--callers N] [--seconds T] [--swap-every K] [--inputs I] [--hidden H]</c>: N callers
/// (one per core), each on a thread of its own, for T seconds (5) against an ONNX MLP (I → H Relu → I; 256 → 1024 by default, ~2 MB) served from a model folder: its
/// servable called directly (<c>servable</c>, the default), an async API whose handler calls it, in process (<c>async</c>) or over
/// HTTP (<c>http</c>: POST, then GET until completed). The same run measures a steady phase, then a phase with a new version
/// dropped into the folder every K ms (500), and prints throughput and latency percentiles (p50, p99, p99.9, max) of each, and
/// the ratio of their p99s.
/// </summary>
/// <remarks>A live progress display on a terminal; plain lines when the output is redirected.</remarks>
public static class LoadHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        int at = Array.IndexOf(args, "--target");
        string target = at >= 0 ? args[at + 1] : "servable";
        if (target is not ("servable" or "async" or "http"))
        {
            await Console.Error.WriteLineAsync($"--target must be servable, async or http; it is '{target}'.");
            return 2;
        }

        int callers = LoadOptions.Int(args, "--callers", Environment.ProcessorCount);
        TimeSpan phase = LoadOptions.Seconds(args, 5);
        var swapEvery = TimeSpan.FromMilliseconds(LoadOptions.Int(args, "--swap-every", 500));
        int inputs = LoadOptions.Int(args, "--inputs", 256);
        int hidden = LoadOptions.Int(args, "--hidden", 1024);
        bool plain = Console.IsOutputRedirected;
        string folder = Directory.CreateTempSubdirectory("servables-load-").FullName;
        try
        {
            long version = 1;
            WriteVersion(folder, version, inputs, hidden);
            await using WebApplication app = await StartAsync(folder, inputs);
            Func<Task> call = Caller(app, target, inputs);
            for (var warm = Stopwatch.StartNew(); warm.Elapsed < TimeSpan.FromSeconds(2);)
            {
                await call(); // warm-up: tiered compilation of the paths measured
            }

            Console.WriteLine($"{callers} caller(s) against the {(target == "servable" ? "servable, directly" : target == "async" ? "async API, in process" : "async API, over HTTP")}; MLP {inputs} → {hidden} → {inputs}; {phase.TotalSeconds:0} s steady, then {phase.TotalSeconds:0} s with a new version every {swapEvery.TotalMilliseconds:0} ms");
            Phase steady = await MeasureAsync("steady", call, callers, phase, plain, swap: null);
            int swaps = 0;
            Phase swapping = await MeasureAsync($"a swap every {swapEvery.TotalMilliseconds:0} ms", call, callers, phase, plain, swap: async stop =>
            {
                while (!stop.IsCancellationRequested)
                {
                    Thread.Sleep(swapEvery); // on the swapper's own thread: on time whatever the callers do
                    await Task.CompletedTask;
                    WriteVersion(folder, ++version, inputs, hidden);
                    swaps++;
                }
            });

            var manager = app.Services.GetRequiredService<IServableManager>();
            long serving = manager.ListAvailableServableIds().Where(id => id.Name == "mlp").Select(id => id.Version).DefaultIfEmpty(0).Max();
            Report(plain, [steady, swapping]);
            Console.WriteLine($"{swaps} versions dropped in, version {serving} serving at the end; failed calls: {steady.Failed + swapping.Failed}; p99 with swaps / steady: {swapping.P99 / steady.P99:F2}x");
            return steady.Failed + swapping.Failed == 0 ? 0 : 1;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<WebApplication> StartAsync(string folder, int inputs)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddServables(o => o.ManageStateInterval = TimeSpan.FromMilliseconds(20))
            .AddOnnxServable("mlp", folder)
            .ConfigureStorage(storage => storage.PollPeriod = TimeSpan.FromMilliseconds(50));
        builder.Services.AddAsyncHandler<MlpHandler>("mlp", o =>
        {
            (o.MaxConcurrencyPerWorker, o.QueueCapacity) = (4, 100_000);
            o.Config["inputs"] = inputs.ToString(CultureInfo.InvariantCulture);
        });
        WebApplication app = builder.Build();
        app.MapAsyncApi("/mlp", "mlp");
        await app.StartAsync();
        return app;
    }

    private static Func<Task> Caller(WebApplication app, string target, int inputs)
    {
        var manager = app.Services.GetRequiredService<IServableManager>();
        IAsyncApiClient client = app.Services.GetRequiredKeyedService<IAsyncApiClient>("mlp");
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 })
        {
            BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()),
        };
        byte[] body = "{}"u8.ToArray();
        return target switch
        {
            "servable" => () =>
            {
                MlpHandler.Run(manager, inputs);
                return Task.CompletedTask;
            },
            "async" => async () =>
            {
                AsyncRequestStatus done = await client.WaitForCompletionAsync(await client.SubmitAsync(body, "application/json"), TimeSpan.FromMinutes(1));
                if (done.State != AsyncRequestState.Completed)
                {
                    throw new InvalidOperationException($"{done.Id} {done.Status}: {done.Error}");
                }
            },
            _ => async () => await Async.HttpRoundTripLoad.RoundTripAsync(http, "/mlp", body),
        };
    }

    private static async Task<Phase> MeasureAsync(string name, Func<Task> call, int callers, TimeSpan duration, bool plain, Func<CancellationToken, Task>? swap)
    {
        var latencies = new List<double>[callers];
        int failed = 0;
        long calls = 0;
        using var stop = new CancellationTokenSource();
        long started = Stopwatch.GetTimestamp();
        // Each caller on a thread of its own, as a request thread; the thread pool stays free for what the library runs on it.
        Task[] running = [.. Enumerable.Range(0, callers).Select(c => Task.Factory.StartNew(async () =>
        {
            var mine = latencies[c] = new List<double>(1 << 16);
            while (!stop.IsCancellationRequested)
            {
                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    await call();
                }
#pragma warning disable CA1031 // A failed call is counted and fails the run.
                catch (Exception)
#pragma warning restore CA1031
                {
                    Interlocked.Increment(ref failed);
                }

                mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                Interlocked.Increment(ref calls);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap())];
        Task swapping = swap is null ? Task.CompletedTask : Task.Factory.StartNew(() => swap(stop.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        if (plain)
        {
            await Task.Delay(duration);
        }
        else
        {
            await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn()).StartAsync(async progress =>
            {
                ProgressTask task = progress.AddTask(name, maxValue: duration.TotalMilliseconds);
                while (!progress.IsFinished)
                {
                    await Task.Delay(100);
                    double elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    task.Value = Math.Min(elapsed, duration.TotalMilliseconds);
                    task.Description = $"{name}: {Interlocked.Read(ref calls) / (elapsed / 1000):N0} calls/s";
                }
            });
        }

        await stop.CancelAsync();
        await Task.WhenAll([.. running, swapping]);
        TimeSpan elapsedTotal = Stopwatch.GetElapsedTime(started);
        double[] all = [.. latencies.SelectMany(l => l).Order()];
        return new Phase(name, all.Length / elapsedTotal.TotalSeconds, At(all, 0.5), At(all, 0.99), At(all, 0.999), all[^1], failed);
    }

    private static double At(double[] sorted, double quantile) => sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * quantile))];

    private static void Report(bool plain, Phase[] phases)
    {
        string F(double ms) => ms.ToString("F3", CultureInfo.InvariantCulture);
        if (plain)
        {
            Console.WriteLine("phase | calls/s | p50 ms | p99 ms | p99.9 ms | max ms | failed");
            foreach (Phase p in phases)
            {
                Console.WriteLine($"{p.Name} | {p.Rate:N0} | {F(p.P50)} | {F(p.P99)} | {F(p.P999)} | {F(p.Max)} | {p.Failed}");
            }

            return;
        }

        var table = new Table().Border(TableBorder.Rounded).AddColumns("phase", "calls/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed");
        foreach (Phase p in phases)
        {
            table.AddRow(Markup.Escape(p.Name), p.Rate.ToString("N0", CultureInfo.InvariantCulture), F(p.P50), F(p.P99), F(p.P999), F(p.Max), p.Failed.ToString(CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
    }

    /// <summary>Writes version <paramref name="version"/> of the MLP (its own random weights), staged and renamed in.</summary>
    private static void WriteVersion(string folder, long version, int inputs, int hidden)
    {
        var random = new Random((int)version);
        string staging = Path.Combine(folder, $".staging-{version}");
        OnnxModelWriter.Mlp(RandomWeights.Matrix(random, inputs, hidden), RandomWeights.Vector(random, hidden), RandomWeights.Matrix(random, hidden, inputs), RandomWeights.Vector(random, inputs))
            .WriteTo(Path.Combine(staging, "model.onnx"));
        Directory.Move(staging, Path.Combine(folder, version.ToString(CultureInfo.InvariantCulture)));
    }

    private sealed record Phase(string Name, double Rate, double P50, double P99, double P999, double Max, int Failed);

    /// <summary>The async API's handler: one run of the newest MLP on a fixed input.</summary>
    public sealed class MlpHandler(IServableManager models, AsyncHandlerConfig config) : IAsyncHandler
    {
        private readonly int _inputs = int.Parse(config["inputs"]!, CultureInfo.InvariantCulture);

        public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
        {
            Run(models, _inputs);
            return ValueTask.FromResult<object?>(null);
        }

        /// <summary>One run of the newest version on a row of ones.</summary>
        public static void Run(IServableManager models, int inputs)
        {
            float[] x = new float[inputs];
            Array.Fill(x, 1f);
            float[] y = new float[inputs];
            using ServableHandle<OnnxServable> model = models.GetServableHandle<OnnxServable>(ServableRequest.Latest("mlp"));
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, inputs]);
            using OrtValue output = OrtValue.CreateTensorValueFromMemory(y, [1, inputs]);
            model.Value.Run(["X"], [input], ["Y"], [output]);
        }
    }
}
