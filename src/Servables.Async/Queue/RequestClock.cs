namespace Servables.Async;

/// <summary>The time an async API stamps on its requests: its <see cref="TimeProvider"/>'s, cheaply read.</summary>
/// <remarks>
/// With <see cref="TimeProvider.System"/>, a reading is the UTC time read at the first reading within
/// the current tick of the coarse system timer (<see cref="Environment.TickCount64"/>: 4 ms on Linux,
/// about 16 ms on Windows), so that most readings cost a coarse tick read (~5 ns) rather than a full
/// clock read (~25 ns on a VM), twice per request; a timestamp is then up to one coarse tick early.
/// Any other provider (a test's fake clock) is read every time. Durations are not measured with it
/// but with <see cref="TimeProvider.GetTimestamp"/>. Thread-safe.
/// </remarks>
internal sealed class RequestClock(TimeProvider time)
{
    private readonly bool _coarse = ReferenceEquals(time, TimeProvider.System);
    private Reading? _last;

    /// <summary>Now, to within one coarse tick with the system clock.</summary>
    public DateTimeOffset GetUtcNow()
    {
        if (!_coarse)
        {
            return time.GetUtcNow();
        }

        long tick = Environment.TickCount64;
        Reading? last = Volatile.Read(ref _last);
        return last is not null && last.Tick == tick ? last.Utc : Read(tick);
    }

    private DateTimeOffset Read(long tick)
    {
        var reading = new Reading(tick, time.GetUtcNow());
        Volatile.Write(ref _last, reading); // racing readers in one tick may each write theirs: any of them will do
        return reading.Utc;
    }

    private sealed record Reading(long Tick, DateTimeOffset Utc);
}
