using System.Diagnostics;
using System.Globalization;
using Servables.Benchmarks.Onnx;
using Servables.Testing.Torch;
using Servables.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Benchmarks.Torch;

/// <summary>
/// <c>--batching --backend torch [--callers 16] [--seconds 20] [--timeout-ms 1] [--max-batch 8] [--workers 2] [--torch-threads 1] [--inputs 256] [--hidden 1024]</c>:
/// <c>--callers</c> concurrent callers each run one example at a time through a TorchScript MLP
/// (by default 256 → 1024 Relu → 1024 Relu → 10, about 5 MB of weights, written with <see cref="TorchScriptWriter"/>),
/// unbatched (<see cref="TorchServable.Forward(Tensor, bool)"/> on their own threads) and batched
/// (<see cref="TorchServable.ForwardAsync(Tensor, bool, CancellationToken)"/> with <see cref="TorchServableOptions.Batching"/>),
/// in alternating rounds of one second in one process; prints throughput and p50/p99 latency of both, then
/// one more batched round observed through the metrics (batch sizes, the batch function's forward time, queue delay).
/// libtorch's intra-op threads belong to the process (<see cref="TorchRuntime.SetThreads"/>, <c>--torch-threads</c>),
/// so both sides run with the same setting.
/// </summary>
internal static class TorchBatchingLoad
{
    private const int Inputs = 256;
    private const int Hidden = 1024;
    private const int Outputs = 10;

    public static async Task<int> RunAsync(string[] args)
    {
        int callers = BatchedLoad.Arg(args, "--callers", 16);
        int seconds = BatchedLoad.Arg(args, "--seconds", 20);
        int timeoutMs = BatchedLoad.Arg(args, "--timeout-ms", 1);
        int maxBatch = BatchedLoad.Arg(args, "--max-batch", 8);
        int workers = BatchedLoad.Arg(args, "--workers", 2);
        int threads = BatchedLoad.Arg(args, "--torch-threads", 1);
        int inputs = BatchedLoad.Arg(args, "--inputs", Inputs);
        int hidden = BatchedLoad.Arg(args, "--hidden", Hidden);
        TorchRuntime.SetThreads(threads);

        // Every caller blocks a pool thread while unbatched: without this the pool adds threads slowly and the first rounds measure that.
        ThreadPool.GetMinThreads(out int minWorkers, out int minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, callers + workers + 4), minIo);

        string folder = Path.Combine(Path.GetTempPath(), $"servables-torch-batching-{Guid.NewGuid():N}");
        string modelPath = Path.Combine(folder, "model.pt");
        Directory.CreateDirectory(folder);
        try
        {
            var random = new Random(7);
            File.WriteAllBytes(modelPath, new TorchScriptWriter("Mlp3")
                .Parameter("w1", Flatten(RandomWeights.Matrix(random, inputs, hidden)), inputs, hidden)
                .Parameter("b1", RandomWeights.Vector(random, hidden), hidden)
                .Parameter("w2", Flatten(RandomWeights.Matrix(random, hidden, hidden)), hidden, hidden)
                .Parameter("b2", RandomWeights.Vector(random, hidden), hidden)
                .Parameter("w3", Flatten(RandomWeights.Matrix(random, hidden, Outputs)), hidden, Outputs)
                .Parameter("b3", RandomWeights.Vector(random, Outputs), Outputs)
                .Forward(
                    "h1 = torch.relu(torch.addmm(self.b1, x, self.w1))",
                    "h2 = torch.relu(torch.addmm(self.b2, h1, self.w2))",
                    "return torch.addmm(self.b3, h2, self.w3)")
                .ToArray());

            var plain = new TorchLoader(new ServableId("mlp", 1), modelPath);
            var batchedOptions = new TorchServableOptions { Batching = new TorchBatchingOptions { BatchWorkers = workers } };
            (batchedOptions.Batching.Queue.MaxBatchSize, batchedOptions.Batching.Queue.BatchTimeout, batchedOptions.Batching.Queue.MaxEnqueuedBatches) = (maxBatch, TimeSpan.FromMilliseconds(timeoutMs), 64);
            batchedOptions.Batching.Queue.AllowSynchronousContinuations = args.Contains("--sync-continuations");
            var batchedLoader = new TorchLoader(new ServableId("mlp", 2), modelPath, batchedOptions);
            await plain.LoadAsync();
            await batchedLoader.LoadAsync();
            TorchServable unbatched = plain.Value!;
            TorchServable batched = batchedLoader.Value!;
            foreach (int rows in new[] { 1, 4, 8, 16, 32 })
            {
                // What the model itself gains from a batch: one caller, no scheduler.
                using Tensor input = torch.tensor(RandomWeights.Vector(random, rows * inputs), [rows, inputs]);
                for (int i = 0; i < 50; i++)
                {
                    unbatched.Forward(input).Dispose();
                }

                long start = Stopwatch.GetTimestamp();
                int runs = 0;
                while (Stopwatch.GetElapsedTime(start).TotalSeconds < 1)
                {
                    unbatched.Forward(input).Dispose();
                    runs++;
                }

                double perRun = Stopwatch.GetElapsedTime(start).TotalMilliseconds / runs;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  one caller, {threads} intra-op thread(s), {rows,2} rows per forward: {perRun:F3} ms per forward, {perRun / rows:F4} ms per row"));
            }

            float[][] examples = [.. Enumerable.Range(0, callers).Select(c => RandomWeights.Vector(new Random(c), inputs))];

            Console.WriteLine($"Torch MLP {inputs}→{hidden}→{hidden}→{Outputs} (TorchScript, {BatchedLoad.MlpWeightsMegabytes(inputs, hidden, Outputs):F1} MB of weights), {callers} callers, one example per call, TorchRuntime.SetThreads({threads}); batched: MaxBatchSize {maxBatch}, BatchTimeout {timeoutMs} ms, {workers} worker(s){(args.Contains("--sync-continuations") ? ", synchronous continuations" : string.Empty)}; {seconds} rounds of 1 s each");
            BatchedLoad.Caller MakeCaller(int c, bool isBatched)
            {
                Tensor x = torch.tensor(examples[c], [1, inputs]);
                return new BatchedLoad.Caller(
                    isBatched ? async () => (await batched.ForwardAsync(x)).Dispose() : () => { unbatched.Forward(x).Dispose(); return ValueTask.CompletedTask; },
                    x);
            }

            await BatchedLoad.CompareAsync(callers, seconds, MakeCaller, $" (BatchTimeout {timeoutMs} ms)");
            await DescribeBatchesAsync(callers, MakeCaller);
            await batched.DisposeAsync();
            unbatched.Dispose();
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>One more batched round, observed through the metrics: batch sizes, queue delay, and the time the batched forwards took.</summary>
    private static async Task DescribeBatchesAsync(int callers, Func<int, bool, BatchedLoad.Caller> makeCaller)
    {
        var sizes = new List<int>();
        var delays = new List<double>();
        var forwards = new List<double>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name is "servables.batch.size" or "servables.batch.queue_delay" or "servables.torch.forward.duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((_, value, _, _) =>
        {
            lock (sizes)
            {
                sizes.Add(value);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            lock (sizes)
            {
                (instrument.Name == "servables.batch.queue_delay" ? delays : forwards).Add(value * 1000);
            }
        });
        listener.Start();
        (List<double> latencies, double elapsed) = await BatchedLoad.RoundAsync(callers, makeCaller, batched: true);
        listener.Dispose();
        lock (sizes)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  observed batched round: {latencies.Count / elapsed:F0} calls/s, {sizes.Count} batches of {sizes.DefaultIfEmpty().Average():F1} calls on average, the batch function's forward {forwards.DefaultIfEmpty().Average():F3} ms, queue delay {delays.DefaultIfEmpty().Average():F3} ms on average"));
        }
    }

    private static float[] Flatten(float[,] m)
    {
        var flat = new float[m.Length];
        int k = 0;
        foreach (float v in m)
        {
            flat[k++] = v;
        }

        return flat;
    }
}
