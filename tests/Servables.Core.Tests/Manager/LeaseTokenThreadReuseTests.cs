namespace Servables.Core.Tests.Manager;

/// <summary>Lease tokens across threads whose managed ids the runtime reuses.</summary>
/// <remarks>
/// In a collection of its own that runs alone: a dead thread's id goes to the next thread created
/// anywhere in the process, so threads started by tests running beside it would take the id first.
/// </remarks>
[Collection(nameof(LeaseTokenThreadReuseTests))]
[CollectionDefinition(nameof(LeaseTokenThreadReuseTests), DisableParallelization = true)]
public sealed class LeaseTokenThreadReuseTests
{
    [Fact]
    public void StaleToken_FromADeadThreadWhoseIdWasReused_NeverEndsTheNewThreadsLease()
    {
        // .NET reuses managed thread ids: a token derived from the thread id would repeat on the
        // thread that inherits the id, and a stale copy of a handle would end that thread's lease.
        // Other tests create threads too, so the id may go elsewhere: try a bounded number of rounds.
        var version = new LoadedVersion(new LoaderHarness(new ServableId("m", 1), null, _ => { }), new object());
        bool reused = false;
        for (int round = 0; round < 50 && !reused; round++)
        {
            int deadId = 0;
            long staleToken = 0;
            RunOnNewThread(() =>
            {
                deadId = Environment.CurrentManagedThreadId;
                Assert.True(version.TryAcquire(out _, out staleToken));
                Assert.True(version.TryEndLease(staleToken)); // the first dispose
            });

            for (int attempt = 0; attempt < 5 && !reused; attempt++)
            {
                // A dead thread's id is given out again once its Thread object has been collected.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                RunOnNewThread(() =>
                {
                    if (Environment.CurrentManagedThreadId != deadId)
                    {
                        return;
                    }

                    reused = true;
                    Assert.True(version.TryAcquire(out _, out long fresh));
                    Assert.NotEqual(staleToken, fresh);
                    Assert.False(version.TryEndLease(staleToken)); // the stale copy's second dispose
                    Assert.True(version.IsLeaseHeld(fresh));
                    Assert.True(version.TryEndLease(fresh));
                });
            }
        }

        Assert.True(reused, "No new thread got a dead thread's managed id in 50 rounds; the runtime no longer reuses ids this way.");
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void RunOnNewThread(Action action)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(10)));
        if (failure is not null)
        {
            throw new Xunit.Sdk.XunitException("The thread failed: " + failure);
        }
    }
}
