using System.Diagnostics;
using Servables.Async;

namespace Servables.Benchmarks.Async;

/// <summary>Round trips through an async API in process (submit, wait for the stored result), as the load modes run them.</summary>
internal static class RoundTrips
{
    private static readonly byte[] Body = "{\"x\":1}"u8.ToArray();

    /// <summary><paramref name="callers"/> callers each running round trips (submit, wait for the stored result) back to back for <paramref name="duration"/>.</summary>
    public static async Task<(long Trips, TimeSpan Elapsed, double P50Ms, double P99Ms)> RunAsync(IAsyncApiClient client, int callers, TimeSpan duration)
    {
        var latencies = new List<double>[callers];
        long end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var mine = latencies[c] = new List<double>(4096);
            while (Stopwatch.GetTimestamp() < end)
            {
                long t0 = Stopwatch.GetTimestamp();
                string id = await client.SubmitAsync(Body, "application/json");
                AsyncRequestStatus done = await client.WaitForCompletionAsync(id, TimeSpan.FromMinutes(1));
                if (done.State != AsyncRequestState.Completed)
                {
                    throw new InvalidOperationException($"Round trip {id} ended {done.Status}: {done.Error}");
                }

                mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        })));
        TimeSpan elapsed = Stopwatch.GetElapsedTime(started);
        double[] all = [.. latencies.SelectMany(l => l).Order()];
        return (all.Length, elapsed, all[all.Length / 2], all[(int)(all.Length * 0.99)]);
    }
}
