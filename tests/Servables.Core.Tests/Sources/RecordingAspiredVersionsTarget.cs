using Servables.Testing;

namespace Servables.Core.Tests.Sources;

/// <summary>A target that records every aspired set it receives, in order, and lets a test wait (bounded) for the next ones.</summary>
internal sealed class RecordingAspiredVersionsTarget<T> : IAspiredVersionsTarget<T>
{
    private readonly Lock _gate = new();
    private readonly List<(string Name, IReadOnlyList<ServableData<T>> Versions)> _calls = [];

    /// <summary>Every call so far, in order.</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<ServableData<T>> Versions)> Calls
    {
        get
        {
            lock (_gate)
            {
                return [.. _calls];
            }
        }
    }

    public void SetAspiredVersions(string servableName, IReadOnlyList<ServableData<T>> versions)
    {
        lock (_gate)
        {
            _calls.Add((servableName, [.. versions]));
        }
    }

    /// <summary>The calls for <paramref name="servableName"/>, in order.</summary>
    public IReadOnlyList<IReadOnlyList<ServableData<T>>> CallsFor(string servableName) =>
        Calls.Where(c => c.Name == servableName).Select(c => c.Versions).ToList();

    /// <summary>The version numbers of the last set sent for <paramref name="servableName"/>.</summary>
    /// <exception cref="InvalidOperationException">No set was sent for it.</exception>
    public long[] LastVersions(string servableName) =>
        CallsFor(servableName) is { Count: > 0 } calls
            ? calls[^1].Select(d => d.Id.Version).ToArray()
            : throw new InvalidOperationException($"No aspired set was sent for '{servableName}'.");

    /// <summary>Waits, in real time and at most <paramref name="timeout"/>, until at least <paramref name="count"/> calls arrived.</summary>
    public Task WaitForCallsAsync(int count, TimeSpan timeout) =>
        Eventually.WaitUntilAsync(() => Calls.Count >= count, timeout, $"{count} call(s) to the target");
}
