using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

using Servables.Async;
using Servables.Async.Tests.Results;

namespace Servables.Sqlite.Tests.Results;

/// <summary>Kills a host (SIGKILL) with requests queued and in progress, restarts it, and checks that nothing accepted was lost.</summary>
public sealed class SqliteCrashRecoveryTests : IDisposable
{
    private const int Requests = 40;
    private readonly string _folder = Directory.CreateTempSubdirectory("servables-crash-").FullName;

    [Fact]
    public async Task KillDashNine_WithQueuedAndRunningRequests_RestartCompletesAllAndLosesNoResult()
    {
        string db = Path.Combine(_folder, "requests.db");
        var accepted = new ConcurrentQueue<string>();
        var handled = new ConcurrentQueue<string>();

        using (Process child = Start("submit", db, Requests.ToString(System.Globalization.CultureInfo.InvariantCulture)))
        {
            child.OutputDataReceived += (_, e) =>
            {
                if (e.Data?.StartsWith("ACCEPTED ", StringComparison.Ordinal) == true)
                {
                    accepted.Enqueue(e.Data[9..]);
                }
                else if (e.Data?.StartsWith("HANDLED ", StringComparison.Ordinal) == true)
                {
                    handled.Enqueue(e.Data[8..]);
                }
            };
            child.BeginOutputReadLine();
            await WaitForAsync(() => accepted.Count == Requests && handled.Count >= 3, child);
            child.Kill(); // SIGKILL on Linux: no shutdown code runs
            await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        Dictionary<string, string?> completedBefore;
        await using (var store = OpenStore(db))
        {
            IReadOnlyList<AsyncRequestRecord> unfinished = await store.GetUnfinishedAsync();
            Assert.NotEmpty(unfinished); // the kill really left work behind
            completedBefore = [];
            foreach (string id in accepted)
            {
                AsyncRequestRecord? record = await store.GetAsync(id);
                Assert.NotNull(record); // accepted means stored
                if (record.State == AsyncRequestState.Completed)
                {
                    completedBefore[id] = record.ResultJson;
                }
            }

            Assert.NotEmpty(completedBefore);
        }

        using (Process again = Start("recover", db))
        {
            string output = await again.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(90));
            await again.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("ALLDONE", output, StringComparison.Ordinal);
            Assert.Equal(0, again.ExitCode);
        }

        await using (var store = OpenStore(db))
        {
            int i = 0;
            foreach (string id in accepted)
            {
                AsyncRequestRecord record = (await store.GetAsync(id))!;
                Assert.Equal(AsyncRequestState.Completed, record.State);
                using JsonDocument result = JsonDocument.Parse(record.ResultJson!);
                Assert.Equal(i * 2, result.RootElement.GetProperty("doubled").GetInt32());
                if (completedBefore.TryGetValue(id, out string? before))
                {
                    Assert.Equal(before, record.ResultJson); // no completed result was lost or redone
                }

                i++;
            }
        }
    }

    [Fact]
    public async Task KillDashNine_WithManyConcurrentSubmittersMidFlight_EveryAcceptedRequestCompletesOnce()
    {
        string db = Path.Combine(_folder, "flood.db");
        var accepted = new ConcurrentDictionary<string, int>();
        int handled = 0;
        using (Process child = Start("flood", db, "32"))
        {
            child.OutputDataReceived += (_, e) =>
            {
                // "ACCEPTED <22-character id> <n>": a line the kill cut short has no n, and is not counted.
                string[] parts = e.Data?.Split(' ') ?? [];
                if (parts is ["ACCEPTED", { Length: 22 } id, { Length: > 0 } n])
                {
                    accepted[id] = int.Parse(n, System.Globalization.CultureInfo.InvariantCulture);
                }
                else if (parts is ["HANDLED", _])
                {
                    Interlocked.Increment(ref handled);
                }
            };
            child.BeginOutputReadLine();
            await WaitForAsync(() => accepted.Count >= 2_000 && Volatile.Read(ref handled) >= 100, child);
            child.Kill(); // SIGKILL, with 32 submits and 4 handlers in flight
            await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        await using (var store = OpenStore(db))
        {
            Assert.NotEmpty(await store.GetUnfinishedAsync()); // the kill really left work behind
            foreach (string id in accepted.Keys)
            {
                Assert.NotNull(await store.GetAsync(id)); // accepted means stored
            }
        }

        using (Process again = Start("recover", db))
        {
            string output = await again.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(90));
            await again.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("ALLDONE", output, StringComparison.Ordinal);
            Assert.Equal(0, again.ExitCode);
        }

        // Every row (accepted ones, and submits the kill cut off after their commit) completed once, with its own n.
        using var raw = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False");
        raw.Open();
        using Microsoft.Data.Sqlite.SqliteCommand read = raw.CreateCommand();
        read.CommandText = "SELECT id, state, result_json FROM async_requests WHERE api = 'crash'";
        var doneById = new Dictionary<string, int>();
        using (Microsoft.Data.Sqlite.SqliteDataReader rows = read.ExecuteReader())
        {
            while (rows.Read())
            {
                Assert.Equal(3L, rows.GetInt64(1)); // completed
                using JsonDocument result = JsonDocument.Parse(rows.GetString(2));
                int n = result.RootElement.GetProperty("n").GetInt32();
                Assert.Equal(n * 2, result.RootElement.GetProperty("doubled").GetInt32());
                doneById.Add(rows.GetString(0), n);
            }
        }

        Assert.Equal(doneById.Count, doneById.Values.Distinct().Count()); // no submit stored twice
        foreach ((string id, int n) in accepted)
        {
            Assert.True(doneById.TryGetValue(id, out int stored), $"accepted request {id} (n = {n}) is not in the store");
            Assert.Equal(n, stored);
        }
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static SqliteAsyncResultStore OpenStore(string db) => new(new SqliteAsyncResultStoreOptions { DatabasePath = db, ApiName = "crash" });

    private static Process Start(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory.Replace("Servables.Sqlite.Tests", "Servables.Sqlite.CrashHost", StringComparison.Ordinal), "Servables.Sqlite.CrashHost.dll");
        Assert.True(File.Exists(dll), $"The crash host was not built at {dll}.");
        var info = new ProcessStartInfo(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "dotnet")
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    private static Task WaitForAsync(Func<bool> condition, Process child) =>
        Servables.Testing.Eventually.WaitUntilAsync(
            () =>
            {
                Assert.False(child.HasExited, $"The crash host exited early with code {(child.HasExited ? child.ExitCode : 0)}.");
                return condition();
            },
            TimeSpan.FromSeconds(60),
            "the crash host to reach the kill point");
}
