using Microsoft.Extensions.Time.Testing;

namespace Servables.Testing;

/// <summary>A <see cref="FakeTimeProvider"/> that counts the timers created on it, so a test can wait until code is sleeping before advancing time.</summary>
public sealed class ObservedTimeProvider : FakeTimeProvider
{
    private int _timersCreated;

    public int TimersCreated => Volatile.Read(ref _timersCreated);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ITimer timer = base.CreateTimer(callback, state, dueTime, period);
        Interlocked.Increment(ref _timersCreated);
        return timer;
    }

    /// <summary>Waits (in real time, bounded) until at least <paramref name="count"/> timers were created.</summary>
    public async Task WaitForTimersAsync(int count, TimeSpan? timeout = null)
    {
        DateTime deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (TimersCreated < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} timer(s); {TimersCreated} were created.");
            }

            await Task.Delay(1).ConfigureAwait(false);
        }
    }
}
