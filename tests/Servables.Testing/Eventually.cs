namespace Servables.Testing;

/// <summary>
/// Polls a condition that something running elsewhere (a background loop, a worker, a child process)
/// makes true, bounded in real time. For waiting only: never use it to assert that something has not
/// happened yet (a deterministic test waits for the event that must come first instead).
/// </summary>
public static class Eventually
{
    /// <summary>How long a wait lasts unless the caller says otherwise: long enough for a loaded 2-core CI machine.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(2);

    /// <summary>Returns once <paramref name="condition"/> is true; throws <see cref="TimeoutException"/> naming <paramref name="what"/> when <paramref name="timeout"/> passes first.</summary>
    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return WaitUntilAsync(() => Task.FromResult(condition()), timeout, what);
    }

    /// <summary>Returns once <paramref name="condition"/> completes true; throws <see cref="TimeoutException"/> naming <paramref name="what"/> when <paramref name="timeout"/> passes first.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? what = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        TimeSpan limit = timeout ?? DefaultTimeout;
        DateTime deadline = DateTime.UtcNow + limit;
        while (!await condition().ConfigureAwait(false))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what ?? "The condition"} did not become true within {limit.TotalSeconds:0.#} s.");
            }

            await Task.Delay(PollInterval).ConfigureAwait(false);
        }
    }
}
