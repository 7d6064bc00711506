using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Servables.Async;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Sqlite.Tests.Hosting;

/// <summary>
/// The database file turns read-only under an async API while many submitters write to it. The test makes the
/// file's write-ahead log immutable (<c>chattr +i</c>, which even root cannot write through, unlike a file mode), so
/// every write the store commits fails at the write itself, as on a file system remounted read-only. Skipped with
/// the reason when <c>chattr</c> is missing or the file system or the user cannot set the attribute.
/// </summary>
public sealed class ReadOnlyFileTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("servables-read-only-").FullName;

    public void Dispose()
    {
        foreach (string file in Directory.EnumerateFiles(_folder))
        {
            Chattr("-i", file); // an immutable file cannot be deleted
        }

        Directory.Delete(_folder, recursive: true);
    }

    [SkippableFact]
    public async Task SubmitAsync_FileTurnsReadOnlyUnderConcurrentSubmitters_EachRefusedWithStoreUnavailable_NothingAccepted_ThenTheApiGoesOn()
    {
        (bool can, string reason) = CanMakeImmutable(_folder);
        Skip.IfNot(can, reason);

        string db = Path.Combine(_folder, "ro.db");
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("ro", o =>
        {
            (o.StoreRetries, o.StoreRetryDelay) = (2, TimeSpan.FromMilliseconds(1));
            o.UseSqliteStore(db);
        }));
        IAsyncApiClient client = host.Client("ro");
        string blocker = await client.SubmitTextAsync("gate"); // written before the file turns read-only; its lane is held
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blocker)).State == AsyncRequestState.InProgress);

        string wal = db + "-wal";
        Assert.True(File.Exists(wal), "the store runs in WAL mode, so a commit appends to " + wal);
        Assert.Equal(0, Chattr("+i", wal).Exit);

        // 32 submitters at once: they commit in groups, and every group's write fails.
        Task<string>[] submits = [.. Enumerable.Range(0, 32).Select(i => Task.Run(() => client.SubmitTextAsync($"ro-{i}", requestId: $"ro-{i}").AsTask()))];
        for (int i = 0; i < submits.Length; i++)
        {
            AsyncStoreUnavailableException refused = await Assert.ThrowsAsync<AsyncStoreUnavailableException>(() => submits[i].WaitAsync(Wait));
            Assert.Equal(("ro", $"ro-{i}"), (refused.ApiName, refused.RequestId));
            SqliteException cause = Assert.IsType<SqliteException>(refused.InnerException);
            Assert.Equal(10, cause.SqliteErrorCode); // SQLITE_IOERR: the write-ahead log refused the write
            Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync($"ro-{i}")).State);
        }

        Assert.Equal(0, Chattr("-i", wal).Exit);

        // Writable again: nothing refused is in the file, the held request finishes, and new submits work.
        await using (var reader = new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = db, ApiName = "ro" }))
        {
            for (int i = 0; i < submits.Length; i++)
            {
                Assert.Null(await reader.GetAsync($"ro-{i}"));
            }
        }

        host.Probe.Gate.SetResult();
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(blocker, Wait)).State);
        AsyncRequestStatus after = await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait);
        Assert.Equal(AsyncRequestState.Completed, after.State);
        Assert.Contains("\"text\":\"after\"", after.ResultJson, StringComparison.Ordinal);
    }

    /// <summary>Whether files in <paramref name="folder"/> can be made immutable here; if not, why.</summary>
    internal static (bool Can, string Reason) CanMakeImmutable(string folder)
    {
        string probe = Path.Combine(folder, "immutable-probe");
        File.WriteAllBytes(probe, []);
        (int exit, string reason) = Chattr("+i", probe);
        Chattr("-i", probe);
        File.Delete(probe);
        return (exit == 0, $"cannot make a file immutable in {folder} (chattr: {reason}); this test needs root (CAP_LINUX_IMMUTABLE) on a file system with file attributes (ext4, xfs, btrfs)");
    }

    /// <summary>Runs <c>chattr</c>; its exit code (-1 when it is missing) and what it wrote to stderr.</summary>
    internal static (int Exit, string Reason) Chattr(string change, string file)
    {
        try
        {
            using Process chattr = Process.Start(new ProcessStartInfo("chattr", [change, file]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            string error = chattr.StandardError.ReadToEnd();
            chattr.WaitForExit();
            return (chattr.ExitCode, error.Trim());
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, ex.Message); // no chattr on this machine
        }
    }
}
