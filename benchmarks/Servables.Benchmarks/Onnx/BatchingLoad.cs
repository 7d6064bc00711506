using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;
using Servables.Testing.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// <c>--batching [--callers 16] [--seconds 20] [--timeout-ms 1] [--max-batch 16] [--workers 1] [--batched-intra-op 1] [--no-spin] [--sync-continuations] [--inputs 256] [--hidden 1024]</c>:
/// concurrent callers each run one example at a time through an ONNX MLP
/// (by default 256 → 1024 Relu → 1024 Relu → 10, about 5 MB of weights), unbatched (<see cref="OnnxServable.Run(IReadOnlyDictionary{string, OrtValue}, IReadOnlyCollection{string}?, RunOptions?)"/>
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
        int callers = BatchedLoad.Arg(args, "--callers", 16);
        int seconds = BatchedLoad.Arg(args, "--seconds", 20);
        int timeoutMs = BatchedLoad.Arg(args, "--timeout-ms", 1);
        int maxBatch = BatchedLoad.Arg(args, "--max-batch", 16);
        int workers = BatchedLoad.Arg(args, "--workers", 1);
        int batchedIntraOp = BatchedLoad.Arg(args, "--batched-intra-op", 1);
        bool noSpin = args.Contains("--no-spin");
        int inputs = BatchedLoad.Arg(args, "--inputs", Inputs);
        int hidden = BatchedLoad.Arg(args, "--hidden", Hidden);
        string folder = Path.Combine(Path.GetTempPath(), $"servables-batching-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string modelPath = WriteMlp(folder, inputs, hidden);
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
                float[] x = RandomWeights.Vector(random, rows * inputs);
                using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [rows, inputs]);
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

            float[][] examples = [.. Enumerable.Range(0, callers).Select(c => RandomWeights.Vector(new Random(c), inputs))];

            Console.WriteLine($"ONNX MLP {inputs}→{hidden}→{hidden}→{Outputs} ({BatchedLoad.MlpWeightsMegabytes(inputs, hidden, Outputs):F1} MB of weights), {callers} callers, one example per call, IntraOpThreads 1; batched: IntraOpThreads {batchedIntraOp}{(noSpin ? " (no spinning)" : string.Empty)}, MaxBatchSize {maxBatch}, BatchTimeout {timeoutMs} ms, {workers} worker(s){(args.Contains("--sync-continuations") ? ", synchronous continuations" : string.Empty)}; {seconds} rounds of 1 s each");
            await BatchedLoad.CompareAsync(callers, seconds, (c, isBatched) =>
            {
                OrtValue x = OrtValue.CreateTensorValueFromMemory(examples[c], [1, inputs]);
                var feed = new Dictionary<string, OrtValue> { ["X"] = x };
                return new BatchedLoad.Caller(
                    isBatched ? async () => (await batched.RunAsync(feed)).Dispose() : () => { unbatched.Run(feed).Dispose(); return ValueTask.CompletedTask; },
                    x);
            });
            await batched.DisposeAsync();
            unbatched.Dispose();
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Writes the MLP (<paramref name="inputs"/> → <paramref name="hidden"/> → <paramref name="hidden"/> → 10) into <paramref name="folder"/>; returns the model's path.</summary>
    internal static string WriteMlp(string folder, int inputs = Inputs, int hidden = Hidden)
    {
        string modelPath = Path.Combine(folder, "model.onnx");
        var random = new Random(7);
        new OnnxModelWriter { GraphName = "mlp3" }
            .Input("X", OnnxModelWriter.FloatType, "batch", (long)inputs)
            .Output("Y", OnnxModelWriter.FloatType, "batch", (long)Outputs)
            .Initializer("W1", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, inputs, hidden)), inputs, hidden)
            .Initializer("B1", RandomWeights.Vector(random, hidden), hidden)
            .Initializer("W2", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, hidden, hidden)), hidden, hidden)
            .Initializer("B2", RandomWeights.Vector(random, hidden), hidden)
            .Initializer("W3", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, hidden, Outputs)), hidden, Outputs)
            .Initializer("B3", RandomWeights.Vector(random, Outputs), Outputs)
            .Node("MatMul", ["X", "W1"], ["A1"]).Node("Add", ["A1", "B1"], ["Z1"]).Node("Relu", ["Z1"], ["H1"])
            .Node("MatMul", ["H1", "W2"], ["A2"]).Node("Add", ["A2", "B2"], ["Z2"]).Node("Relu", ["Z2"], ["H2"])
            .Node("MatMul", ["H2", "W3"], ["A3"]).Node("Add", ["A3", "B3"], ["Y"])
            .WriteTo(modelPath);
        return modelPath;
    }
}
