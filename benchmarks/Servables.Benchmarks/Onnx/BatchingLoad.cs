using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;
using Servables.Testing.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// <c>--batching [--callers 16] [--seconds 20] [--timeout-ms 1] [--max-batch 16] [--workers 1] [--batched-intra-op 1] [--no-spin] [--sync-continuations]</c>:
/// <see cref="Callers"/> concurrent callers each run one example at a time through an ONNX MLP
/// (256 → 1024 Relu → 1024 Relu → 10, about 5 MB of weights), unbatched (<see cref="OnnxServable.Run(IReadOnlyDictionary{string, OrtValue}, IReadOnlyCollection{string}?, RunOptions?)"/>
/// on their own threads) and batched (<see cref="OnnxServable.RunAsync"/>), in alternating rounds of
/// one second in one process, both sessions with one intra-op thread; prints throughput and p50/p99 latency.
/// </summary>
internal static class BatchingLoad
{
    internal const int Inputs = 256;
    private const int Hidden = 1024;
    private const int Outputs = 10;

    public static async Task<int> RunAsync(string[] args)
    {
        int callers = Arg(args, "--callers", 16);
        int seconds = Arg(args, "--seconds", 20);
        int timeoutMs = Arg(args, "--timeout-ms", 1);
        int maxBatch = Arg(args, "--max-batch", 16);
        int workers = Arg(args, "--workers", 1);
        int batchedIntraOp = Arg(args, "--batched-intra-op", 1);
        bool noSpin = args.Contains("--no-spin");
        string folder = Path.Combine(Path.GetTempPath(), $"servables-batching-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string modelPath = WriteMlp(folder);
            var random = new Random(8);
            var plain = new OnnxLoader(new ServableId("mlp", 1), modelPath, new OnnxServableOptions { IntraOpThreads = 1 });
            var batchedOptions = new OnnxServableOptions { IntraOpThreads = batchedIntraOp, Batching = new OnnxBatchingOptions { BatchWorkers = workers } };
            if (noSpin)
            {
                batchedOptions.ConfigureSessionOptions = o => o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); // the intra-op threads sleep instead of spinning between runs
            }

            (batchedOptions.Batching.Queue.MaxBatchSize, batchedOptions.Batching.Queue.BatchTimeout, batchedOptions.Batching.Queue.MaxEnqueuedBatches) = (maxBatch, TimeSpan.FromMilliseconds(timeoutMs), 64);
            batchedOptions.Batching.Queue.AllowSynchronousContinuations = args.Contains("--sync-continuations");
            var batchedLoader = new OnnxLoader(new ServableId("mlp", 2), modelPath, batchedOptions);
            await plain.LoadAsync();
            await batchedLoader.LoadAsync();
            OnnxServable unbatched = plain.Value!;
            OnnxServable batched = batchedLoader.Value!;
            foreach (int rows in new[] { 1, 4, 16, 32 })
            {
                // What the model itself gains from a batch: one thread, no scheduler.
                float[] x = RandomWeights.Vector(random, rows * Inputs);
                using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [rows, Inputs]);
                var named = new Dictionary<string, OrtValue> { ["X"] = input };
                for (int i = 0; i < 50; i++)
                {
                    unbatched.Run(named).Dispose();
                }

                long start = Stopwatch.GetTimestamp();
                int runs = 0;
                while (Stopwatch.GetElapsedTime(start).TotalSeconds < 1)
                {
                    unbatched.Run(named).Dispose();
                    runs++;
                }

                double perRun = Stopwatch.GetElapsedTime(start).TotalMilliseconds / runs;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  one thread, raw session, {rows,2} rows per run: {perRun:F3} ms per run, {perRun / rows:F4} ms per row"));
            }

            float[][] examples = [.. Enumerable.Range(0, callers).Select(c => RandomWeights.Vector(new Random(c), Inputs))];

            // Warm-up, then alternating rounds.
            await RoundAsync(unbatched, examples, TimeSpan.FromSeconds(1), batched: false);
            await RoundAsync(batched, examples, TimeSpan.FromSeconds(1), batched: true);
            var results = new[] { new List<double>(), new List<double>() };
            long[] calls = [0, 0];
            double[] wall = [0, 0];
            for (int round = 0; round < seconds; round++)
            {
                foreach (bool isBatched in round % 2 == 0 ? new[] { false, true } : [true, false])
                {
                    int side = isBatched ? 1 : 0;
                    (List<double> latencies, double elapsed) = await RoundAsync(isBatched ? batched : unbatched, examples, TimeSpan.FromSeconds(1), isBatched);
                    results[side].AddRange(latencies);
                    calls[side] += latencies.Count;
                    wall[side] += elapsed;
                }
            }

            Console.WriteLine($"ONNX MLP {Inputs}→{Hidden}→{Hidden}→{Outputs}, {callers} callers, one example per call, IntraOpThreads 1; batched: IntraOpThreads {batchedIntraOp}{(noSpin ? " (no spinning)" : string.Empty)}, MaxBatchSize {maxBatch}, BatchTimeout {timeoutMs} ms, {workers} worker(s){(args.Contains("--sync-continuations") ? ", synchronous continuations" : string.Empty)}; {seconds} rounds of 1 s each");
            double[] throughput = [calls[0] / wall[0], calls[1] / wall[1]];
            for (int side = 0; side < 2; side++)
            {
                results[side].Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {(side == 0 ? "unbatched" : "batched  ")}  {throughput[side],9:F0} calls/s   p50 {Percentile(results[side], 0.50),7:F3} ms   p99 {Percentile(results[side], 0.99),7:F3} ms"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  throughput batched/unbatched {throughput[1] / throughput[0]:F2}×; p99 batched − unbatched {Percentile(results[1], 0.99) - Percentile(results[0], 0.99):F3} ms"));
            await batched.DisposeAsync();
            unbatched.Dispose();
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Writes the MLP into <paramref name="folder"/>; returns the model's path.</summary>
    internal static string WriteMlp(string folder)
    {
        string modelPath = Path.Combine(folder, "model.onnx");
        var random = new Random(7);
        new OnnxModelWriter { GraphName = "mlp3" }
            .Input("X", OnnxModelWriter.FloatType, "batch", (long)Inputs)
            .Output("Y", OnnxModelWriter.FloatType, "batch", (long)Outputs)
            .Initializer("W1", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, Inputs, Hidden)), Inputs, Hidden)
            .Initializer("B1", RandomWeights.Vector(random, Hidden), Hidden)
            .Initializer("W2", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, Hidden, Hidden)), Hidden, Hidden)
            .Initializer("B2", RandomWeights.Vector(random, Hidden), Hidden)
            .Initializer("W3", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, Hidden, Outputs)), Hidden, Outputs)
            .Initializer("B3", RandomWeights.Vector(random, Outputs), Outputs)
            .Node("MatMul", ["X", "W1"], ["A1"]).Node("Add", ["A1", "B1"], ["Z1"]).Node("Relu", ["Z1"], ["H1"])
            .Node("MatMul", ["H1", "W2"], ["A2"]).Node("Add", ["A2", "B2"], ["Z2"]).Node("Relu", ["Z2"], ["H2"])
            .Node("MatMul", ["H2", "W3"], ["A3"]).Node("Add", ["A3", "B3"], ["Y"])
            .WriteTo(modelPath);
        return modelPath;
    }

    private static async Task<(List<double> Latencies, double Seconds)> RoundAsync(OnnxServable servable, float[][] examples, TimeSpan length, bool batched)
    {
        long started = Stopwatch.GetTimestamp();
        long end = started + (long)(length.TotalSeconds * Stopwatch.Frequency);
        var perCaller = new List<double>[examples.Length];
        Task[] callers = [.. Enumerable.Range(0, examples.Length).Select(c => Task.Run(async () =>
        {
            var latencies = perCaller[c] = [];
            using OrtValue x = OrtValue.CreateTensorValueFromMemory(examples[c], [1, Inputs]);
            var inputs = new Dictionary<string, OrtValue> { ["X"] = x };
            while (Stopwatch.GetTimestamp() < end)
            {
                long start = Stopwatch.GetTimestamp();
                using IDisposableReadOnlyCollection<OrtValue> y = batched ? await servable.RunAsync(inputs) : servable.Run(inputs);
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }))];
        await Task.WhenAll(callers);
        return ([.. perCaller.SelectMany(l => l)], Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    internal static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    internal static int Arg(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
