using System.Diagnostics;

namespace Servables.Testing;

/// <summary>Runs a program (the dotnet CLI) from a test, for tests that pack the packages and build throw-away apps with them.</summary>
public static class ChildProcess
{
    /// <summary>Runs <paramref name="file"/> and returns its output (stdout, then stderr) and exit code; the test host's MSBuild settings do not leak into it.</summary>
    /// <param name="file">The program.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="workingDirectory">Where it runs.</param>
    /// <param name="timeout">How long it may run; then it is killed with its children and a <see cref="TimeoutException"/> thrown.</param>
    /// <param name="log">Receives the command line and the last 4,000 characters of its output; null for nowhere.</param>
    /// <param name="allowFailure">False to throw when it exits with a code other than 0.</param>
    public static async Task<(string Output, int ExitCode)> RunAsync(string file, string arguments, string workingDirectory, TimeSpan timeout, Action<string>? log = null, bool allowFailure = false)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        // The test host's MSBuild settings must not leak into the nested builds.
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{file} {arguments}' did not finish within {timeout.TotalMinutes} minutes.");
        }

        string text = await stdout + await stderr;
        log?.Invoke($"$ {file} {arguments} (exit {process.ExitCode})");
        log?.Invoke(text.Length > 4000 ? text[^4000..] : text);
        if (!allowFailure && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{file} {arguments}' exited with {process.ExitCode}:\n{text}");
        }

        return (text, process.ExitCode);
    }

    /// <summary>Packs <paramref name="projects"/> (paths from the repository root) into <paramref name="feed"/> at a version no earlier test used; returns that version.</summary>
    /// <param name="feed">The folder the packages go to, a local package source for a throw-away app.</param>
    /// <param name="timeout">How long each pack may run.</param>
    /// <param name="log">Receives each command and its output; null for nowhere.</param>
    /// <param name="projects">The project files to pack, such as <c>src/Servables.Core/Servables.Core.csproj</c>.</param>
    /// <remarks>
    /// Packs from every test process of a run go one at a time (a lock file in the repository's ignored <c>obj</c> folder):
    /// each builds the same projects into the same <c>obj/Release</c> folders, and two at once could trip over each other's files.
    /// </remarks>
    public static async Task<string> PackAsync(string feed, TimeSpan timeout, Action<string>? log, params string[] projects)
    {
        string repo = RepositoryRoot();
        string version = "0.1.0-consumer." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using FileStream packLock = await LockAsync(Path.Combine(repo, "obj", "pack.lock"), timeout * projects.Length);
        foreach (string project in projects)
        {
            await RunAsync("dotnet", $"pack {Path.Combine(repo, project)} -c Release -o {feed} -p:Version={version} -nologo", repo, timeout, log);
        }

        return version;
    }

    /// <summary>
    /// Deletes what the throw-away apps' restores copied into the global packages folder (<c>NUGET_PACKAGES</c>, or
    /// <c>~/.nuget/packages</c>) for <paramref name="version"/>, a version <see cref="PackAsync"/> returned: every pack has a
    /// version of its own, so without this each test run would leave a few MB there for good. Call it when the test ends.
    /// </summary>
    /// <param name="version">The packed version; null does nothing (the test failed before it packed).</param>
    public static void RemoveFromGlobalPackages(string? version)
    {
        string global = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (version is null || !Directory.Exists(global))
        {
            return;
        }

        foreach (string package in Directory.EnumerateDirectories(global, "servables.*"))
        {
            string folder = Path.Combine(package, version.ToLowerInvariant());
            try
            {
                if (Directory.Exists(folder))
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Another process reads it: it stays, as it would have without this.
            }
        }
    }

    /// <summary>Opens <paramref name="path"/> for this process alone (an exclusive lock on Unix), waiting while another holds it; the lock goes with the stream, or with the process. The file stays, so that every process locks the same one.</summary>
    private static async Task<FileStream> LockAsync(string path, TimeSpan timeout)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (!deadline.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), deadline.Token);
            }
        }
    }

    /// <summary>The repository's root: the first folder above the test's binaries that holds Servables.sln.</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Servables.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("The repository root (Servables.sln) was not found above " + AppContext.BaseDirectory);
    }
}
