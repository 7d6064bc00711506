using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Servables.Testing;

/// <summary>A <c>Servables.Redis.Host</c> child process (one async API on Redis) and what it printed: the requests it handled.</summary>
/// <remarks>For the multi-host tests and the benchmark. Disposing kills it if it still runs.</remarks>
public sealed class RedisHostProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, byte> _handled = new();
    private int _duplicates;
    private int _poisoned;

    /// <summary>Starts the host.</summary>
    /// <param name="hostDll">The built <c>Servables.Redis.Host.dll</c>.</param>
    /// <param name="configuration">Redis's configuration string.</param>
    /// <param name="prefix">The key prefix every host of the API shares.</param>
    /// <param name="name">The host's name, in its results.</param>
    /// <param name="handlerMs">How long the handler takes.</param>
    /// <param name="lanes">The API's lanes.</param>
    /// <param name="wait">How the handler waits: <c>sleep</c> (a timer), <c>spin</c> (a busy core) or <c>block</c> (its thread in <see cref="Thread.Sleep(TimeSpan)"/>).</param>
    /// <param name="quiet">Do not print a line per request (for throughput).</param>
    public RedisHostProcess(string hostDll, string configuration, string prefix, string name, int handlerMs, int lanes, string wait = "sleep", bool quiet = false)
    {
        if (!File.Exists(hostDll))
        {
            throw new FileNotFoundException($"The Redis host was not built at {hostDll}.", hostDll);
        }

        Name = name;
        var info = new ProcessStartInfo(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { hostDll, configuration, prefix, name, handlerMs.ToString(CultureInfo.InvariantCulture), lanes.ToString(CultureInfo.InvariantCulture), wait, quiet ? "quiet" : "loud" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The host's name.</summary>
    public string Name { get; }

    /// <summary>The ids of the requests this host handled.</summary>
    public ICollection<string> Handled => _handled.Keys;

    /// <summary>How many times this host handled a request it had handled before (0 unless a request was handed to it twice).</summary>
    public int DuplicatesHandled => Volatile.Read(ref _duplicates);

    /// <summary>How many poison requests killed this host (0 or 1).</summary>
    public int Poisoned => Volatile.Read(ref _poisoned);

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until the host has started its API.</summary>
    public Task WaitReadyAsync() => _ready.Task.WaitAsync(TimeSpan.FromSeconds(60));

    /// <summary>Kills the host (SIGKILL).</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    /// <summary>Stops the host gracefully (its stdin closes; it stops its API) and waits for it to exit.</summary>
    public void Stop()
    {
        _process.StandardInput.Close();
        if (!_process.WaitForExit(30_000))
        {
            Kill();
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        string[] parts = line?.Split(' ') ?? [];
        switch (parts.FirstOrDefault())
        {
            case "READY":
                _ready.TrySetResult();
                break;
            case "HANDLED":
                if (!_handled.TryAdd(parts[1], 0))
                {
                    Interlocked.Increment(ref _duplicates);
                }

                break;
            case "POISONED":
                Interlocked.Increment(ref _poisoned);
                break;
        }
    }
}
