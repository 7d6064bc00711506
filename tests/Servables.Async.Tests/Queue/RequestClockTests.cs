using Microsoft.Extensions.Time.Testing;

namespace Servables.Async.Tests.Queue;

public sealed class RequestClockTests
{
    [Fact]
    public void GetUtcNow_OtherProvider_ReadsItEveryTime()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        var clock = new RequestClock(time);

        DateTimeOffset first = clock.GetUtcNow();
        time.Advance(TimeSpan.FromTicks(1));

        Assert.Equal(time.GetUtcNow().AddTicks(-1), first);
        Assert.Equal(time.GetUtcNow(), clock.GetUtcNow());
    }

    [Fact]
    public void GetUtcNow_SystemClock_NeverLaterThanNowNorEarlierThanOneCoarseTick()
    {
        // A coarse tick is 4 ms on Linux and about 16 ms on Windows; the bound leaves room for both.
        var clock = new RequestClock(TimeProvider.System);
        for (int i = 0; i < 10_000; i++)
        {
            DateTimeOffset before = DateTimeOffset.UtcNow;
            DateTimeOffset reading = clock.GetUtcNow();
            DateTimeOffset after = DateTimeOffset.UtcNow;

            Assert.InRange(reading, before - TimeSpan.FromMilliseconds(100), after);
        }
    }

    [Fact]
    public async Task GetUtcNow_SystemClock_MovesOnWithTheCoarseTick()
    {
        var clock = new RequestClock(TimeProvider.System);
        DateTimeOffset first = clock.GetUtcNow();

        await Task.Delay(50);

        Assert.True(clock.GetUtcNow() - first >= TimeSpan.FromMilliseconds(30), "a reading 50 ms later is at most one coarse tick behind");
    }
}
