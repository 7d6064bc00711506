using System.Diagnostics;
using System.Globalization;

namespace Servables.Benchmarks;

/// <summary>
/// What the backends' <c>--batching</c> harnesses share: concurrent callers making one call at a time,
/// unbatched and batched in alternating one-second rounds in one process, and the summary line of each side.
/// </summary>
internal static class BatchedLoad
{
    /// <summary>One caller's calls: <see cref="Call"/> makes one (batched or not, as the caller was made), <see cref="Resources"/> is disposed after the round.</summary>
    internal readonly record struct Caller(Func<ValueTask> Call, IDisposable Resources);

    /// <summary>A warm-up round of each side, then <paramref name="rounds"/> rounds of each, alternating which goes first; prints each side and the ratio.</summary>
    /// <param name="callers">Concurrent callers per round.</param>
    /// <param name="rounds">Rounds per side.</param>
    /// <param name="makeCaller">Makes caller <c>c</c> of a round, batched or not.</param>
    /// <param name="p99Note">Appended to the ratio line.</param>
    public static async Task CompareAsync(int callers, int rounds, Func<int, bool, Caller> makeCaller, string p99Note = "")
    {
        await RoundAsync(callers, makeCaller, batched: false);
        await RoundAsync(callers, makeCaller, batched: true);
        var latencies = new[] { new List<double>(), new List<double>() };
        double[] wall = [0, 0];
        for (int round = 0; round < rounds; round++)
        {
            foreach (bool batched in round % 2 == 0 ? new[] { false, true } : [true, false])
            {
                int side = batched ? 1 : 0;
                (List<double> l, double elapsed) = await RoundAsync(callers, makeCaller, batched);
                latencies[side].AddRange(l);
                wall[side] += elapsed;
            }
        }

        double[] throughput = [latencies[0].Count / wall[0], latencies[1].Count / wall[1]];
        for (int side = 0; side < 2; side++)
        {
            latencies[side].Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {(side == 0 ? "unbatched" : "batched  ")}  {throughput[side],9:F0} calls/s   p50 {Percentile(latencies[side], 0.50),7:F3} ms   p99 {Percentile(latencies[side], 0.99),7:F3} ms"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  throughput batched/unbatched {throughput[1] / throughput[0]:F2}×; p99 batched − unbatched {Percentile(latencies[1], 0.99) - Percentile(latencies[0], 0.99):F3} ms{p99Note}"));
    }

    /// <summary>One second of <paramref name="callers"/> concurrent callers, each on the thread pool; every call's latency in milliseconds and the round's length in seconds.</summary>
    public static async Task<(List<double> Latencies, double Seconds)> RoundAsync(int callers, Func<int, bool, Caller> makeCaller, bool batched)
    {
        long started = Stopwatch.GetTimestamp();
        long end = started + Stopwatch.Frequency;
        var perCaller = new List<double>[callers];
        Task[] running = [.. Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var latencies = perCaller[c] = [];
            Caller caller = makeCaller(c, batched);
            using (caller.Resources)
            {
                while (Stopwatch.GetTimestamp() < end)
                {
                    long start = Stopwatch.GetTimestamp();
                    await caller.Call();
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            }
        }))];
        await Task.WhenAll(running);
        return ([.. perCaller.SelectMany(l => l)], Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>The megabytes of float weights of an MLP <paramref name="inputs"/> → <paramref name="hidden"/> → <paramref name="hidden"/> → <paramref name="outputs"/>.</summary>
    public static double MlpWeightsMegabytes(int inputs, int hidden, int outputs) => ((long)inputs * hidden + (long)hidden * hidden + (long)hidden * outputs) * 4 / 1e6;

    public static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    public static int Arg(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
