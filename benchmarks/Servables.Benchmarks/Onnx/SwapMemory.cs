using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;
using Servables.Testing.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// <c>--swap-memory [--swaps N] [--blocks B] [--width W] [--ffn F] [--keep-native-memory] [--trace]</c>: serves a
/// real-size ONNX model and swaps to a new version N times (default 100), running 5 batches of 32 after each swap,
/// and prints the process's resident memory after the first swap and after the last. The model is B blocks
/// (default 6) of a transformer's feed-forward layer, W → F Relu → W (default 768 → 3072 → 768, BERT-base's
/// sizes): 113 MB of weights in 9.4 MB matrices by default; <c>--blocks 1 --width 512 --ffn 1024</c> is the
/// 4 MB model of the first measurement. With <c>--keep-native-memory</c> the manager's
/// <c>ReleaseNativeMemoryAfterUnload</c> is off: the baseline. <c>--trace</c> prints resident memory and glibc's
/// allocator figures every 10 swaps. Run each in its own process (the figures are the whole process's).
/// </summary>
internal static class SwapMemory
{
    private const int Batch = 32;

    public static async Task<int> RunAsync(string[] args)
    {
        int swaps = IntOption(args, "--swaps", 100);
        int blocks = IntOption(args, "--blocks", 6);
        int width = IntOption(args, "--width", 768);
        int ffn = IntOption(args, "--ffn", 3072);
        bool release = !args.Contains("--keep-native-memory");
        bool trace = args.Contains("--trace");
        string folder = Path.Combine(Path.GetTempPath(), $"servables-swap-memory-{Guid.NewGuid():N}");
        string modelPath = Path.Combine(folder, "model.onnx");
        var random = new Random(7);
        WriteModel(modelPath, random, blocks, width, ffn);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"model: {blocks} × ({width} → {ffn} Relu → {width}), {new FileInfo(modelPath).Length / 1e6:F1} MB"));
        try
        {
            await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions
            {
                ManageStateInterval = Timeout.InfiniteTimeSpan,
                ReleaseNativeMemoryAfterUnload = release,
            });
            using var inference = new InferenceThread();
            float[] input = RandomWeights.Vector(random, Batch * width);
            float[] output = new float[Batch * width];
            long afterFirst = 0;
            for (int version = 1; version <= swaps + 1; version++)
            {
                var id = new ServableId("mlp", version);
                manager.SetAspiredVersions("mlp", [ServableData.Create<Loader>(id, new OnnxLoader(id, modelPath, new OnnxServableOptions { IntraOpThreads = 1 }))]);
                await manager.ManageStateAsync(); // loads the new version
                await manager.ManageStateAsync(); // unloads the old one
                inference.Run(() =>
                {
                    using ServableHandle<OnnxServable> mlp = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("mlp"));
                    using OrtValue x = OrtValue.CreateTensorValueFromMemory(input, [Batch, width]);
                    using OrtValue y = OrtValue.CreateTensorValueFromMemory(output, [Batch, width]);
                    for (int run = 0; run < 5; run++)
                    {
                        mlp.Value.Run(["X"], [x], ["Y"], [y]);
                    }
                });

                if (version == 2)
                {
                    afterFirst = ResidentBytes();
                }

                if (trace && version % 10 == 1)
                {
                    long resident = ResidentBytes();
                    MallocInfo malloc = MallInfo2();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"swap {version - 1,3}: RSS {resident / 1e6:F1} MB; malloc in use {malloc.Uordblks / 1e6:F1} MB, free in arenas {malloc.Fordblks / 1e6:F1} MB, arenas {malloc.Arena / 1e6:F1} MB; GC committed {GC.GetGCMemoryInfo().TotalCommittedBytes / 1e6:F1} MB"));
                }
            }

            long afterLast = ResidentBytes();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ReleaseNativeMemoryAfterUnload={release}: RSS after swap 1 {afterFirst / 1e6:F1} MB, after swap {swaps} {afterLast / 1e6:F1} MB, ratio {(double)afterLast / afterFirst:F3}"));
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static int IntOption(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    /// <summary><paramref name="blocks"/> feed-forward blocks, <c>X → Relu(X·W1 + B1)·W2 + B2</c>, one after another: input <c>X</c> and output <c>Y</c> float[batch, width].</summary>
    private static void WriteModel(string path, Random random, int blocks, int width, int ffn)
    {
        var model = new OnnxModelWriter { GraphName = "ffn" }
            .Input("X", OnnxModelWriter.FloatType, "batch", (long)width)
            .Output("Y", OnnxModelWriter.FloatType, "batch", (long)width);
        string x = "X";
        for (int b = 0; b < blocks; b++)
        {
            string y = b == blocks - 1 ? "Y" : $"X{b + 1}";
            model.Initializer($"W1_{b}", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, width, ffn)), width, ffn)
                .Initializer($"B1_{b}", RandomWeights.Vector(random, ffn), ffn)
                .Initializer($"W2_{b}", OnnxModelWriter.Flatten(RandomWeights.Matrix(random, ffn, width)), ffn, width)
                .Initializer($"B2_{b}", RandomWeights.Vector(random, width), width)
                .Node("MatMul", [x, $"W1_{b}"], [$"A{b}"]).Node("Add", [$"A{b}", $"B1_{b}"], [$"Z{b}"]).Node("Relu", [$"Z{b}"], [$"H{b}"])
                .Node("MatMul", [$"H{b}", $"W2_{b}"], [$"C{b}"]).Node("Add", [$"C{b}", $"B2_{b}"], [y]);
            x = y;
        }

        model.WriteTo(path);
    }

    /// <summary>The process's resident set after an aggressive collection (the GC gives back what it can), so that only native memory can differ.</summary>
    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>
    /// One thread for every inference: ONNX Runtime keeps per-thread working buffers that live as long
    /// as the thread, so inferences on ever-new pool threads would grow memory with the thread count,
    /// not with the swaps this measures. A host's inference threads are a bounded set in the same way.
    /// </summary>
    private sealed class InferenceThread : IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<(Action Work, TaskCompletionSource Done)> _work = [];
        private readonly Thread _thread;

        public InferenceThread()
        {
            _thread = new Thread(() =>
            {
                foreach ((Action work, TaskCompletionSource done) in _work.GetConsumingEnumerable())
                {
                    try
                    {
                        work();
                        done.SetResult();
                    }
                    catch (Exception ex)
                    {
                        done.SetException(ex);
                    }
                }
            })
            { IsBackground = true };
            _thread.Start();
        }

        public void Run(Action work)
        {
            var done = new TaskCompletionSource();
            _work.Add((work, done));
            done.Task.GetAwaiter().GetResult();
        }

        public void Dispose()
        {
            _work.CompleteAdding();
            _thread.Join();
            _work.Dispose();
        }
    }

    /// <summary>glibc's allocator statistics (<c>mallinfo2</c>, glibc 2.33+).</summary>
    [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static extern MallocInfo MallInfo2();

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private readonly struct MallocInfo
    {
        public readonly nuint Arena;
        public readonly nuint Ordblks;
        public readonly nuint Smblks;
        public readonly nuint Hblks;
        public readonly nuint Hblkhd;
        public readonly nuint Usmblks;
        public readonly nuint Fsmblks;
        public readonly nuint Uordblks;
        public readonly nuint Fordblks;
        public readonly nuint Keepcost;
    }
}
