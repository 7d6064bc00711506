using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;
using Servables.Testing.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// <c>--swap-memory [--swaps N] [--keep-native-memory] [--trace]</c>: serves a ~4 MB ONNX model (an MLP,
/// 512 → 1024 Relu → 512) and swaps to a new version N times (default 100), running 5 batches of 32
/// after each swap, and prints the process's resident memory after the first swap and after the
/// last. With <c>--keep-native-memory</c> the manager's <c>ReleaseNativeMemoryAfterUnload</c> is off:
/// the baseline. <c>--trace</c> prints resident memory and glibc's allocator figures every 10 swaps.
/// Run each in its own process (the figures are the whole process's).
/// </summary>
internal static class SwapMemory
{
    private const int Inputs = 512;
    private const int Hidden = 1024;
    private const int Outputs = 512;
    private const int Batch = 32;

    public static async Task<int> RunAsync(string[] args)
    {
        int swapsAt = Array.IndexOf(args, "--swaps");
        int swaps = swapsAt >= 0 ? int.Parse(args[swapsAt + 1], CultureInfo.InvariantCulture) : 100;
        bool release = !args.Contains("--keep-native-memory");
        bool trace = args.Contains("--trace");
        string folder = Path.Combine(Path.GetTempPath(), $"servables-swap-memory-{Guid.NewGuid():N}");
        string modelPath = Path.Combine(folder, "model.onnx");
        var random = new Random(7);
        OnnxModelWriter.Mlp(RandomWeights.Matrix(random, Inputs, Hidden), RandomWeights.Vector(random, Hidden), RandomWeights.Matrix(random, Hidden, Outputs), RandomWeights.Vector(random, Outputs)).WriteTo(modelPath);
        try
        {
            await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions
            {
                ManageStateInterval = Timeout.InfiniteTimeSpan,
                ReleaseNativeMemoryAfterUnload = release,
            });
            using var inference = new InferenceThread();
            float[] input = RandomWeights.Vector(random, Batch * Inputs);
            float[] output = new float[Batch * Outputs];
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
                    using OrtValue x = OrtValue.CreateTensorValueFromMemory(input, [Batch, Inputs]);
                    using OrtValue y = OrtValue.CreateTensorValueFromMemory(output, [Batch, Outputs]);
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
