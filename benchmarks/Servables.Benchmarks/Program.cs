using BenchmarkDotNet.Running;

namespace Servables.Benchmarks;

/// <summary>
/// Runs the benchmarks picked on the command line (for example <c>--filter '*ServableHandle*'</c>), or,
/// with <c>--side-by-side</c>, a class's baseline and some of its benchmarks in turn in one process, or,
/// with <c>--swap-memory</c>, the resident memory of a process that swaps ONNX model versions, or, with
/// <c>--batching</c>, concurrent callers of an ONNX model and then of a TorchScript model, batched against
/// unbatched (<c>--backend onnx</c> or <c>--backend torch</c> for one of them), or, with <c>--threading</c>,
/// concurrent callers of ONNX sessions with shared and with their own thread pools, or, with
/// <c>--sqlite-group-commit</c>, durable round trips with 1 and 64 callers and the time of one flush, or, with
/// <c>--redis-hosts</c>, round trips through one async API served by 1 and by 2 host processes on Redis, against
/// the in-memory store, or, with <c>--http</c>, round trips over HTTP (<c>MapAsyncApi</c> on Kestrel, loopback) against
/// the same through <c>IAsyncApiClient</c> in process, or, with <c>--load</c>, N callers against a servable or an async API
/// (in process or over HTTP) steady and then with a version swap every K ms.
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

        if (args.Contains("--load"))
        {
            return await Load.LoadHarness.RunAsync(args);
        }

        if (args.Contains("--http"))
        {
            return await Async.HttpRoundTripLoad.RunAsync(args);
        }

        if (args.Contains("--redis-hosts"))
        {
            return await Async.RedisHostsLoad.RunAsync(args);
        }

        if (args.Contains("--batching"))
        {
            int at = Array.IndexOf(args, "--backend");
            string backend = at >= 0 && at + 1 < args.Length ? args[at + 1] : "both";
            if (backend is not ("onnx" or "torch" or "both"))
            {
                await Console.Error.WriteLineAsync($"--backend must be onnx, torch or both; it is '{backend}'.");
                return 2;
            }

            int exit = backend == "torch" ? 0 : await Onnx.BatchingLoad.RunAsync(args);
            return exit != 0 || backend == "onnx" ? exit : await Torch.TorchBatchingLoad.RunAsync(args);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
