using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Servables.Testing;

/// <summary>A real <c>redis-server</c> on 127.0.0.1, on a free port, with its files in a temporary folder (AOF on, <c>appendfsync always</c>).</summary>
/// <remarks>For the Redis tests and the multi-host benchmark. Where the binary is not installed (<see cref="Binary"/> is null), tests skip with the reason (CI installs it).</remarks>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("servables-redis-").FullName;
    private Process? _process;

    private readonly string _appendFsync;

    private RedisServer(int port, string appendFsync) => (Port, _appendFsync) = (port, appendFsync);

    /// <summary>The installed <c>redis-server</c>, or null.</summary>
    public static string? Binary { get; } = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
        ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration string for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Why a test needing Redis cannot run here.</summary>
    public const string MissingReason = "redis-server is not installed here (apt-get install -y redis-server); .ci/run installs it, so these tests run in CI.";

    /// <summary>Starts a server on a free port and waits until it answers.</summary>
    /// <param name="appendFsync">The AOF's fsync policy: <c>always</c> (every write on disk before its reply) or <c>everysec</c>.</param>
    /// <exception cref="InvalidOperationException"><c>redis-server</c> is not installed, or did not start.</exception>
    public static async Task<RedisServer> StartAsync(string appendFsync = "always")
    {
        if (Binary is null)
        {
            throw new InvalidOperationException(MissingReason);
        }

        var server = new RedisServer(FreePort(), appendFsync);
        await server.RunAsync().ConfigureAwait(false);
        return server;
    }

    /// <summary>Kills the server (SIGKILL, no shutdown save) and starts it again on the same port and folder: what it had fsynced to its AOF is back.</summary>
    public async Task RestartAsync(TimeSpan downFor)
    {
        Kill();
        await Task.Delay(downFor).ConfigureAwait(false);
        await RunAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.Yield();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task RunAsync()
    {
        var info = new ProcessStartInfo(Binary!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _folder, "--save", "", "--appendonly", "yes", "--appendfsync", _appendFsync, "--daemonize", "no", "--protected-mode", "no", "--logfile", "" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await PingsAsync().ConfigureAwait(false))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with code {_process.ExitCode}.");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("redis-server did not answer PING within 20 s.");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port).ConfigureAwait(false);
            NetworkStream stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray()).ConfigureAwait(false);
            var buffer = new byte[64];
            int read = await stream.ReadAsync(buffer).ConfigureAwait(false);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private void Kill()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }

        _process?.Dispose();
        _process = null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
