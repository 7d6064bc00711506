using System.Globalization;

namespace Servables;

/// <summary>Waits until each named servable has a version available, or fails as soon as one cannot get there.</summary>
/// <remarks>
/// Driven by the <see cref="ServableStateMonitor"/>: every state change re-evaluates what is still
/// missing. A servable is done when one of its versions is Available; it has failed when versions
/// of it are known and every one of them ended in error (nothing else is loading or waiting to).
/// Thread-safe: state changes arrive on the manager's threads while the host awaits.
/// </remarks>
internal sealed class InitialLoadWait
{
    private readonly ServableStateMonitor _monitor;
    private readonly Dictionary<string, string> _missing; // name → base path
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();

    private InitialLoadWait(ServableStateMonitor monitor, IEnumerable<StoragePathServable> servables)
    {
        _monitor = monitor;
        _missing = servables.ToDictionary(s => s.Name, s => s.BasePath, StringComparer.Ordinal);
    }

    /// <summary>Waits for every servable in <paramref name="servables"/>.</summary>
    /// <exception cref="InvalidOperationException">A servable's versions all failed to load; the message and inner exception carry its error.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed; the message names what is not available and in what state it is.</exception>
    public static async Task WaitAsync(ServableStateMonitor monitor, IEnumerable<StoragePathServable> servables, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var wait = new InitialLoadWait(monitor, servables);
        monitor.StateChanged += wait.OnStateChanged;
        try
        {
            wait.Evaluate();
            await wait._done.Task.WaitAsync(timeout, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"Servables did not start: after {timeout}, no version of {wait.DescribeMissing()} is available. "
                + "Check that version folders exist and load, raise ServableStorageOptions.InitialLoadTimeout, or set WaitForInitialLoad = false to start without waiting.");
        }
        finally
        {
            monitor.StateChanged -= wait.OnStateChanged;
        }
    }

    private void OnStateChanged(object? sender, ServableState change) => Evaluate();

    private void Evaluate()
    {
        Exception? failure = null;
        lock (_gate)
        {
            foreach (string name in _missing.Keys.ToArray())
            {
                IReadOnlyDictionary<long, ServableState> versions = _monitor.GetVersionStates(name);
                if (versions.Values.Any(s => s.State == ServableManagerState.Available))
                {
                    _missing.Remove(name);
                }
                else if (versions.Count > 0 && versions.Values.All(s => s is { State: ServableManagerState.End, IsError: true }))
                {
                    ServableState last = versions.Values.Last();
                    failure ??= new InvalidOperationException(
                        $"Servables did not start: no version of servable '{name}' could be loaded. Version {last.Id.Version.ToString(CultureInfo.InvariantCulture)}: {last.Error!.Message}",
                        last.Error);
                }
            }

            if (failure is null && _missing.Count > 0)
            {
                return;
            }
        }

        if (failure is null)
        {
            _done.TrySetResult();
        }
        else
        {
            _done.TrySetException(failure);
        }
    }

    private string DescribeMissing()
    {
        lock (_gate)
        {
            return string.Join("; ", _missing.Select(kv =>
            {
                IReadOnlyDictionary<long, ServableState> versions = _monitor.GetVersionStates(kv.Key);
                string states = versions.Count == 0
                    ? $"no version found under {kv.Value}"
                    : string.Join(", ", versions.Values.Select(s => $"version {s.Id.Version.ToString(CultureInfo.InvariantCulture)} {(s.IsError ? "failed: " + s.Error!.Message : s.State.ToString())}"));
                return $"'{kv.Key}' ({states})";
            }));
        }
    }
}
