using Microsoft.Extensions.Logging;

namespace Servables;

/// <summary>How a <see cref="LoaderHarness"/> retries a failed load: the manager's retry options, copied once.</summary>
/// <remarks>
/// Built by the manager from <see cref="AspiredVersionsManagerOptions"/> when it is constructed and
/// shared by every harness it loads. Immutable and thread-safe (the predicate must be, as the
/// options say).
/// </remarks>
/// <param name="MaxRetries">Retries after the first attempt (<see cref="AspiredVersionsManagerOptions.MaxLoadRetries"/>).</param>
/// <param name="RetryInterval">The wait before each retry (<see cref="AspiredVersionsManagerOptions.LoadRetryInterval"/>).</param>
/// <param name="ShouldRetry">Decides whether a failure is worth retrying; null retries every failure; a throwing predicate means "do not retry".</param>
/// <param name="Time">The clock for the per-attempt timeout and the retry interval.</param>
/// <param name="Logger">Where retries and predicate failures are logged.</param>
internal sealed record LoadRetrySettings(
    int MaxRetries,
    TimeSpan RetryInterval,
    Func<ServableId, Exception, bool>? ShouldRetry,
    TimeProvider Time,
    ILogger Logger);
