using BenchmarkDotNet.Running;

namespace Servables.Benchmarks;

/// <summary>
/// Runs the benchmarks picked on the command line (for example <c>--filter '*ServableHandle*'</c>), or,
/// with <c>--side-by-side</c>, a class's baseline and some of its benchmarks in turn in one process, or,
/// with <c>--swap-memory</c>, the resident memory of a process that swaps ONNX model versions, or, with
/// <c>--batching</c>, concurrent callers of an ONNX model batched against unbatched, or, with
/// <c>--threading</c>, concurrent callers of ONNX sessions with shared and with their own thread pools, or, with
/// <c>--sqlite-group-commit</c>, durable round trips with 1 and 64 callers and the time of one flush.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--side-by-side"))
        {
            return await SideBySide.RunAsync(args);
        }

        if (args.Contains("--swap-memory"))
        {
            return await Onnx.SwapMemory.RunAsync(args);
        }

        if (args.Contains("--threading"))
        {
            return await Onnx.ThreadingLoad.RunAsync(args);
        }

        if (args.Contains("--sqlite-group-commit"))
        {
            return await Async.SqliteGroupCommitLoad.RunAsync(args);
        }

        if (args.Contains("--batching"))
        {
            return await Onnx.BatchingLoad.RunAsync(args);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
