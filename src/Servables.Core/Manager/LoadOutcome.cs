namespace Servables;

/// <summary>How <see cref="LoaderHarness.LoadWithRetriesAsync"/> ended: loaded, cancelled, failed, or timed out.</summary>
/// <remarks>
/// Exactly one of these holds: <see cref="Cancelled"/>; <see cref="Failure"/> is null (the loader
/// loaded); <see cref="Abandoned"/> is set (the last attempt timed out and still runs, and
/// <see cref="Failure"/> is the <see cref="TimeoutException"/>); or <see cref="Failure"/> is the last
/// attempt's error. Immutable.
/// </remarks>
/// <param name="Attempts">How many attempts ran (1 + retries).</param>
/// <param name="Failure">The error that ended the load; null when it loaded or was cancelled.</param>
/// <param name="Abandoned">The attempt that outlived its timeout and still runs; null otherwise.</param>
/// <param name="Cancelled">True when the harness's cancellation ended the load or a wait to retry.</param>
internal readonly record struct LoadOutcome(int Attempts, Exception? Failure, Task? Abandoned, bool Cancelled)
{
    /// <summary>The metrics tag: cancelled, timeout, success or error.</summary>
    public string Tag => Cancelled ? "cancelled" : Abandoned is not null ? "timeout" : Failure is null ? "success" : "error";
}
