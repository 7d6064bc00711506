namespace Servables.Core.Tests.Manager;

public sealed class LoadedVersionTests
{
    private int _drained;

    private LoadedVersion NewVersion() =>
        new(new LoaderHarness(new ServableId("m", 1), null, _ => _drained++), new object());

    [Fact]
    public void Retire_WithNoLease_DrainsOnce_AndNeverRevives()
    {
        LoadedVersion version = NewVersion();
        version.Retire();
        version.Retire();

        Assert.Equal(1, _drained);
        Assert.False(version.TryAcquire(out _, out _));
        Assert.Equal(1, _drained);
        Assert.Equal(0, version.LeaseCount);
    }

    [Fact]
    public void Retire_WithLeases_DrainsWhenTheLastEnds()
    {
        LoadedVersion version = NewVersion();
        Assert.True(version.TryAcquire(out UntypedServableHandle a, out long tokenA));
        Assert.True(version.TryAcquire(out UntypedServableHandle b, out long tokenB));
        Assert.NotEqual(tokenA, tokenB);
        Assert.Equal(2, version.LeaseCount);

        version.Retire();
        Assert.True(a.TryEndLease(tokenA));
        Assert.False(a.TryEndLease(tokenA)); // idempotent
        Assert.Equal(0, _drained);
        Assert.True(b.IsLeaseHeld(tokenB));

        Assert.True(b.TryEndLease(tokenB));
        Assert.Equal(1, _drained);
        Assert.False(b.IsLeaseHeld(tokenB));
    }

    [Fact]
    public void StaleToken_NeverEndsTheLeaseThatReusedItsSlot()
    {
        LoadedVersion version = NewVersion();
        Assert.True(version.TryAcquire(out _, out long first));
        Assert.True(version.TryEndLease(first));
        Assert.True(version.TryAcquire(out _, out long second)); // same thread: likely the same slot

        Assert.Equal((first >> 1) & (LoadedVersion.SlotCount - 1), (second >> 1) & (LoadedVersion.SlotCount - 1));
        Assert.False(version.TryEndLease(first));
        Assert.True(version.IsLeaseHeld(second));
    }

    [Fact]
    public void Tokens_SlotsTakenAgainAndAgainFromManyThreads_NeverRepeat()
    {
        LoadedVersion version = NewVersion();
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<long, bool>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (int i = 0; i < 70_000; i++)
            {
                Assert.True(version.TryAcquire(out UntypedServableHandle lease, out long token));
                Assert.Same(version, lease);
                Assert.True(seen.TryAdd(token, true));
                Assert.True(version.TryEndLease(token));
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromSeconds(30))));

        Assert.Equal(280_000, seen.Count);
        Assert.Equal(0, version.LeaseCount);
    }

    [Fact]
    public void MoreLeasesThanSlots_OverflowLeasesCountToo()
    {
        LoadedVersion version = NewVersion();
        var leases = new List<(UntypedServableHandle Lease, long Token)>();
        for (int i = 0; i < LoadedVersion.SlotCount + 10; i++)
        {
            Assert.True(version.TryAcquire(out UntypedServableHandle lease, out long token));
            leases.Add((lease, token));
        }

        Assert.Equal(10, leases.Count(l => !ReferenceEquals(l.Lease, version)));
        Assert.Equal(LoadedVersion.SlotCount + 10, version.LeaseCount);
        version.Retire();
        foreach ((UntypedServableHandle lease, long token) in leases)
        {
            Assert.Equal(0, _drained);
            Assert.True(lease.TryEndLease(token));
            Assert.False(lease.TryEndLease(token));
        }

        Assert.Equal(1, _drained);
    }

    [Fact]
    public async Task ConcurrentAcquireReleaseAndRetire_DrainsExactlyOnceAfterEveryLeaseEnded()
    {
        for (int round = 0; round < 50; round++)
        {
            _drained = 0;
            int held = 0;
            bool drainedWhileHeld = false;
            var drainedVersion = new LoadedVersion(
                new LoaderHarness(new ServableId("m", 1), null, _ =>
                {
                    drainedWhileHeld |= Volatile.Read(ref held) != 0;
                    Interlocked.Increment(ref _drained);
                }),
                new object());
            using var go = new Barrier(3);
            Task[] users = [.. Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                go.SignalAndWait();
                for (int i = 0; i < 2000; i++)
                {
                    if (drainedVersion.TryAcquire(out UntypedServableHandle lease, out long token))
                    {
                        Interlocked.Increment(ref held);
                        Interlocked.Decrement(ref held);
                        Assert.True(lease.TryEndLease(token));
                    }
                }
            }))];
            go.SignalAndWait();
            drainedVersion.Retire();
            await Task.WhenAll(users);

            Assert.Equal(1, _drained);
            Assert.False(drainedWhileHeld);
            Assert.Equal(0, drainedVersion.LeaseCount);
        }
    }
}
