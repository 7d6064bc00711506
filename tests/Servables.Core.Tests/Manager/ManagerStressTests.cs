using Servables.Testing;

namespace Servables.Core.Tests.Manager;

public sealed class ManagerStressTests
{
    private const int Swaps = 40;

    /// <summary>
    /// Swaps versions continuously (real background loop, real time) while readers acquire Latest,
    /// use the servable and release it. Bounded by a fixed number of swaps, each given at most 10
    /// seconds: a count, not a time budget, so a loaded machine (test projects run side by side on
    /// 2 cores) makes it slower, never red.
    /// </summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 2)]
    public async Task ContinuousSwaps_ReadersNeverFailNorUseDisposed(int loadWorkers, int unloadWorkers)
    {
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions
        {
            ManageStateInterval = TimeSpan.FromMilliseconds(1),
            LoadWorkerCount = loadWorkers,
            UnloadWorkerCount = unloadWorkers,
        });
        using var monitor = new ServableStateMonitor(manager, new ServableStateMonitorOptions { MaxLogEvents = 0 });
        var loaders = new List<FakeLoader>();
        void Aspire(long version)
        {
            var loader = new FakeLoader("m", version);
            lock (loaders)
            {
                loaders.Add(loader);
            }

            manager.SetAspiredVersions("m", [ServableData.Create<Loader>(loader.Id, loader)]);
        }

        Aspire(1);
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", 1)], TimeSpan.FromSeconds(10))).IsAvailable);

        using var stop = new CancellationTokenSource();
        long reads = 0;
        var failures = new List<Exception>();
        // Dedicated threads: spinning readers on the thread pool would starve the manager's workers on a 2-core machine.
        Thread[] readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using ServableHandle<FakeServable> handle = manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
                    handle.Value.Use();
                    Thread.SpinWait(20); // hold the lease across a little work
                    handle.Value.Use();
                    Interlocked.Increment(ref reads);
                }
                catch (Exception ex)
                {
                    lock (failures)
                    {
                        failures.Add(ex);
                    }
                }
            }
        })
        { IsBackground = true }).ToArray();
        foreach (Thread reader in readers)
        {
            reader.Start();
        }

        long version = 1;
        while (version < Swaps + 1)
        {
            version++;
            Aspire(version);
            ServableAvailability available = await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", version)], TimeSpan.FromSeconds(10));
            Assert.True(available.IsAvailable, available.DescribeUnavailable());
        }

        await stop.CancelAsync();
        foreach (Thread reader in readers)
        {
            Assert.True(reader.Join(TimeSpan.FromSeconds(10)), "a reader did not stop");
        }

        Assert.Empty(failures);
        Assert.True(Interlocked.Read(ref reads) > Swaps, $"only {reads} reads over {Swaps} swaps");
        List<FakeLoader> all;
        lock (loaders)
        {
            all = [.. loaders];
        }

        Assert.Empty(all.SelectMany(l => l.Violations));

        // Every version but the last was retired; each unloads once its last reader let go.
        await Eventually.WaitUntilAsync(() => all.Take(all.Count - 1).All(l => l.Created!.IsDisposed));
        Assert.All(all.Take(all.Count - 1), l => Assert.Equal(1, l.UnloadCalls));
    }
}
