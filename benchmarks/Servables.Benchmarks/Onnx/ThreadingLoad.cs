using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// <c>--threading [--callers 2] [--seconds 10] [--shared-intra-op 0] [--no-spin]</c>: concurrent unbatched
/// callers of an ONNX MLP (256 → 1024 → 1024 → 10), each calling <see cref="OnnxServable.Run(IReadOnlyDictionary{string, OrtValue}, IReadOnlyCollection{string}?, RunOptions?)"/>
/// in a loop on its own thread, against sessions with different thread settings, in alternating rounds
/// of one second in one process: the shared pools (the default), a pool of the session's own with one
/// thread per core (ONNX Runtime's default), and one with a single thread. Each setting is also run as a
/// hot swap sees it: two sessions of the model loaded at once, the callers split between them.
/// Prints throughput and p50/p99 latency per setting.
/// </summary>
internal static class ThreadingLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        int callers = BatchedLoad.Arg(args, "--callers", 2);
        int seconds = BatchedLoad.Arg(args, "--seconds", 10);
        int sharedIntraOp = BatchedLoad.Arg(args, "--shared-intra-op", 0);
        bool spinning = !args.Contains("--no-spin");
        OnnxEnvironment.ConfigureSharedThreadPools(sharedIntraOp, allowSpinning: spinning);
        string folder = Path.Combine(Path.GetTempPath(), $"servables-threading-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        var loaded = new List<OnnxServable>();
        try
        {
            string modelPath = BatchingLoad.WriteMlp(folder);
            async Task<OnnxServable[]> LoadAsync(int intraOp, int count)
            {
                var servables = new OnnxServable[count];
                for (int i = 0; i < count; i++)
                {
                    var loader = new OnnxLoader(new ServableId("mlp", loaded.Count + 1), modelPath, new OnnxServableOptions { IntraOpThreads = intraOp });
                    await loader.LoadAsync();
                    loaded.Add(servables[i] = loader.Value!);
                }

                return servables;
            }

            (string Name, OnnxServable[] Sessions)[] settings =
            [
                ($"shared pools ({(sharedIntraOp == 0 ? "default size" : $"{sharedIntraOp} threads")}{(spinning ? string.Empty : ", no spinning")})", await LoadAsync(0, 1)),
                ($"own pool, {Environment.ProcessorCount} threads", await LoadAsync(Environment.ProcessorCount, 1)),
                ("own pool, 1 thread", await LoadAsync(1, 1)),
                ("shared pools, two sessions (a swap)", await LoadAsync(0, 2)),
                ($"own pools of {Environment.ProcessorCount}, two sessions (a swap)", await LoadAsync(Environment.ProcessorCount, 2)),
            ];

            float[][] examples = [.. Enumerable.Range(0, callers).Select(c => RandomWeights.Vector(new Random(c), BatchingLoad.Inputs))];
            var latencies = settings.Select(_ => new List<double>()).ToArray();
            long[] calls = new long[settings.Length];
            double[] wall = new double[settings.Length];
            foreach ((_, OnnxServable[] sessions) in settings)
            {
                await RoundAsync(sessions, examples, TimeSpan.FromSeconds(0.5)); // warm-up
            }

            for (int round = 0; round < seconds; round++)
            {
                int[] order = [.. Enumerable.Range(0, settings.Length).OrderBy(_ => Random.Shared.Next())];
                foreach (int s in order)
                {
                    (List<double> l, double elapsed) = await RoundAsync(settings[s].Sessions, examples, TimeSpan.FromSeconds(1));
                    latencies[s].AddRange(l);
                    calls[s] += l.Count;
                    wall[s] += elapsed;
                }
            }

            Console.WriteLine($"ONNX MLP {BatchingLoad.Inputs}→1024→1024→10, {callers} unbatched callers, {Environment.ProcessorCount} cores, {seconds} rounds of 1 s per setting in random order");
            for (int s = 0; s < settings.Length; s++)
            {
                latencies[s].Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {settings[s].Name,-48} {calls[s] / wall[s],8:F0} calls/s   p50 {BatchedLoad.Percentile(latencies[s], 0.50),7:F3} ms   p99 {BatchedLoad.Percentile(latencies[s], 0.99),7:F3} ms"));
            }

            return 0;
        }
        finally
        {
            loaded.ForEach(s => s.Dispose());
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<(List<double> Latencies, double Seconds)> RoundAsync(OnnxServable[] sessions, float[][] examples, TimeSpan length)
    {
        long started = Stopwatch.GetTimestamp();
        long end = started + (long)(length.TotalSeconds * Stopwatch.Frequency);
        var perCaller = new List<double>[examples.Length];
        Thread[] threads = [.. Enumerable.Range(0, examples.Length).Select(c => new Thread(() =>
        {
            OnnxServable servable = sessions[c % sessions.Length];
            var latencies = perCaller[c] = [];
            using OrtValue x = OrtValue.CreateTensorValueFromMemory(examples[c], [1, BatchingLoad.Inputs]);
            var inputs = new Dictionary<string, OrtValue> { ["X"] = x };
            while (Stopwatch.GetTimestamp() < end)
            {
                long start = Stopwatch.GetTimestamp();
                servable.Run(inputs).Dispose();
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }) { IsBackground = true })];
        Array.ForEach(threads, t => t.Start());
        await Task.Run(() => Array.ForEach(threads, t => t.Join()));
        return ([.. perCaller.SelectMany(l => l)], Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
}
