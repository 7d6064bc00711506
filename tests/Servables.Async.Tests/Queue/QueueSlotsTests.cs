namespace Servables.Async.Tests.Queue;

public sealed class QueueSlotsTests
{
    [Fact]
    public void TryTake_UpToCapacity_ThenRefusedUntilOneIsReturned()
    {
        var slots = new QueueSlots(capacity: 3);

        Assert.True(slots.TryTake());
        Assert.True(slots.TryTake());
        Assert.True(slots.TryTake());
        Assert.False(slots.TryTake());
        Assert.Equal(3, slots.Depth);

        slots.Return(); // a lane dequeued one: the submitter's stale reading is refreshed
        Assert.Equal(2, slots.Depth);
        Assert.True(slots.TryTake());
        Assert.False(slots.TryTake());
    }

    [Fact]
    public void Untake_GivesBackASlotTheSubmitDidNotUse()
    {
        var slots = new QueueSlots(capacity: 1);
        Assert.True(slots.TryTake());

        slots.Untake();

        Assert.Equal(0, slots.Depth);
        Assert.True(slots.TryTake());
    }

    [Fact]
    public async Task TryTake_SubmittersAgainstALane_NeverMoreThanCapacityTaken()
    {
        // Two submitters and a lane, bounded by a count: what is held (taken, not yet returned)
        // never exceeds the capacity, and every slot taken comes back.
        const int Capacity = 8;
        const int PerSubmitter = 50_000;
        var slots = new QueueSlots(Capacity);
        var queue = new System.Collections.Concurrent.ConcurrentQueue<int>();
        int held = 0;
        int mostHeld = 0;
        Task[] submitters = [.. Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            for (int done = 0; done < PerSubmitter;)
            {
                if (slots.TryTake())
                {
                    int now = Interlocked.Increment(ref held);
                    int most;
                    while (now > (most = Volatile.Read(ref mostHeld)) && Interlocked.CompareExchange(ref mostHeld, now, most) != most)
                    {
                    }

                    queue.Enqueue(done++);
                }
            }
        }))];
        Task lane = Task.Run(() =>
        {
            for (int taken = 0; taken < 2 * PerSubmitter;)
            {
                if (queue.TryDequeue(out _))
                {
                    Interlocked.Decrement(ref held);
                    slots.Return();
                    taken++;
                }
            }
        });

        await Task.WhenAll([.. submitters, lane]).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.InRange(mostHeld, 1, Capacity);
        Assert.Equal(0, slots.Depth);
    }
}
