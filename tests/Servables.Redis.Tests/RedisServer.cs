using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Servables.Redis.Tests;

/// <summary>A real <c>redis-server</c> on 127.0.0.1, on a free port, with its files in a temporary folder (AOF on, <c>appendfsync always</c>).</summary>
/// <remarks>Tests that need it call <see cref="SkipIfMissing"/> first: where the binary is not installed they are skipped with the reason (CI installs it).</remarks>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("servables-redis-").FullName;
    private Process? _process;

    private RedisServer(int port) => Port = port;

    /// <summary>The installed <c>redis-server</c>, or null.</summary>
    public static string? Binary { get; } = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
        ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration string for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Skips the calling test when <c>redis-server</c> is not installed.</summary>
    public static void SkipIfMissing() =>
        Skip.If(Binary is null, "redis-server is not installed here (apt-get install -y redis-server); .ci/run installs it, so these tests run in CI.");

    /// <summary>Starts a server on a free port and waits until it answers.</summary>
    public static async Task<RedisServer> StartAsync()
    {
        SkipIfMissing();
        var server = new RedisServer(FreePort());
        await server.RunAsync();
        return server;
    }

    /// <summary>Kills the server (SIGKILL, no shutdown save) and starts it again on the same port and folder: what it had fsynced to its AOF is back.</summary>
    public async Task RestartAsync(TimeSpan downFor)
    {
        Kill();
        await Task.Delay(downFor);
        await RunAsync();
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
        foreach (string arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _folder, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--protected-mode", "no", "--logfile", "" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await PingsAsync())
        {
            Assert.False(_process.HasExited, $"redis-server exited with code {(_process.HasExited ? _process.ExitCode : 0)}.");
            Assert.True(DateTime.UtcNow < deadline, "redis-server did not answer PING within 20 s.");
            await Task.Delay(20);
        }
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port);
            NetworkStream stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[64];
            int read = await stream.ReadAsync(buffer);
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
