using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables.Async;

namespace Servables.Benchmarks.Async;

/// <summary>
/// <c>--sqlite-group-commit [--seconds N]</c>: durable round trips (submit, a no-op handler, wait for the stored
/// result) through an async API on the SQLite store, with 1 and with 64 concurrent callers in turn in one process,
/// and, in the same run, the time of one flush on the same disk: a one-row commit with <c>synchronous = FULL</c>
/// through a bare connection, and an <c>fsync</c> of a 4 KiB append.
/// </summary>
/// <remarks>
/// Each caller runs round trips back to back for N seconds (5 by default) after a one-second warm-up; the rounds
/// alternate 1, 64, 1, 64 so that a drift of the machine shows. The store's counters give the groups committed
/// and flushed per round trip.
/// </remarks>
public static class SqliteGroupCommitLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        TimeSpan round = LoadOptions.Seconds(args, 5);
        string folder = Directory.CreateTempSubdirectory("servables-group-bench-").FullName;
        try
        {
            double commitMs = MeasureFullCommit(Path.Combine(folder, "flush.db"), 200);
            double fsyncMs = MeasureFsync(Path.Combine(folder, "fsync.bin"), 200);
            Console.WriteLine($"one flush: a one-row commit (synchronous = FULL) {commitMs * 1000:F0} µs (median of 200); an fsync of a 4 KiB append {fsyncMs * 1000:F0} µs");

            SqliteAsyncResultStore? store = null;
            HostApplicationBuilder builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddAsyncHandler<AsyncRoundTripBenchmarks.NoOpHandler>(o =>
            {
                (o.WorkerCount, o.MaxConcurrencyPerWorker, o.QueueCapacity) = (1, 64, 10_000);
                o.UseSqliteStore(Path.Combine(folder, "bench.db"));
                Func<IServiceProvider, AsyncResultStoreOptions, IAsyncResultStore> sqlite = o.StoreFactory!;
                o.StoreFactory = (services, storeOptions) => store = (SqliteAsyncResultStore)sqlite(services, storeOptions);
            });
            using IHost host = builder.Build();
            await host.StartAsync();
            IAsyncApiClient client = host.Services.GetRequiredService<IAsyncApiClient>();

            await RoundTrips.RunAsync(client, 8, TimeSpan.FromSeconds(1)); // warm-up
            var rates = new Dictionary<int, List<double>> { [1] = [], [64] = [] };
            foreach (int callers in new[] { 1, 64, 1, 64 })
            {
                (long groups, long flushed) = (store!.Groups, store.FlushedGroups);
                (long writes, long executeTicks, long commitTicks) = store.GroupTimes;
                (long trips, TimeSpan elapsed, double p50, double p99) = await RoundTrips.RunAsync(client, callers, round);
                double rate = trips / elapsed.TotalSeconds;
                rates[callers].Add(rate);
                Console.WriteLine(
                    $"{callers,3} caller(s): {rate,9:N0} round trips/s  p50 {p50:F2} ms  p99 {p99:F2} ms  " +
                    $"groups/round trip {(store.Groups - groups) / (double)trips:F3}  flushes/round trip {(store.FlushedGroups - flushed) / (double)trips:F3}");
                (long writesAfter, long executeAfter, long commitAfter) = store.GroupTimes;
                long groupCount = store.Groups - groups;
                Console.WriteLine(
                    $"      per group: {(writesAfter - writes) / (double)groupCount:F1} writes, statements {(executeAfter - executeTicks) * 1e6 / Stopwatch.Frequency / groupCount:F0} µs, commit {(commitAfter - commitTicks) * 1e6 / Stopwatch.Frequency / groupCount:F0} µs");
            }

            double one = rates[1].Average();
            double many = rates[64].Average();
            Console.WriteLine($"mean: 1 caller {one:N0}/s, 64 callers {many:N0}/s: {many / one:F1}x");
            await host.StopAsync();
            return 0;
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The median time of a one-row commit on a bare WAL connection with <c>synchronous = FULL</c>: one flush of the WAL.</summary>
    private static double MeasureFullCommit(string path, int count)
    {
        using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        connection.Open();
        using (SqliteCommand setup = connection.CreateCommand())
        {
            setup.CommandText = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (v BLOB);";
            setup.ExecuteNonQuery();
        }

        using SqliteCommand insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO t VALUES ($v)";
        insert.Parameters.AddWithValue("$v", new byte[64]);
        var times = new double[count];
        for (int i = 0; i < count; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            insert.ExecuteNonQuery(); // autocommit: one transaction, one flush
            times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }

        Array.Sort(times);
        return times[count / 2];
    }

    /// <summary>The median time of appending 4 KiB to a file and flushing it to the disk.</summary>
    private static double MeasureFsync(string path, int count)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        byte[] page = new byte[4096];
        var times = new double[count];
        for (int i = 0; i < count; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            file.Write(page);
            file.Flush(flushToDisk: true);
            times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }

        Array.Sort(times);
        return times[count / 2];
    }
}
