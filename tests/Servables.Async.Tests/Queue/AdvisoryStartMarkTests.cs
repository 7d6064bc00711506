using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Servables.Testing;

namespace Servables.Async.Tests.Queue;

/// <summary>The in-progress mark is advisory: a lane runs its request without waiting for the store to commit the mark.</summary>
public sealed class AdvisoryStartMarkTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task MarkNotYetCommitted_RequestRunsAndCompletes_TheOutcomeStaysTheStoresLastWord()
    {
        var store = new HeldMarkStore(new InMemoryAsyncResultStore());
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, _) => store));
        IAsyncApiClient client = host.Client();

        string id = await client.SubmitTextAsync("x");
        AsyncRequestStatus done = await client.WaitForCompletionAsync(id, Wait); // while the store still holds the mark

        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.False(store.MarkReleased.Task.IsCompleted);
        store.ReleaseMark();
        Assert.False(await store.MarkResult.Task.WaitAsync(Wait)); // the mark came after the outcome: refused
        Assert.Equal(AsyncRequestState.Completed, (await store.GetAsync(id))!.State);
    }

    [Fact]
    public async Task MarkFailsAfterTheLaneWentOn_LoggedAndTheRequestStillCompletes()
    {
        var store = new HeldMarkStore(new InMemoryAsyncResultStore(), failMark: true);
        var logs = new CapturingLoggerProvider();
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, _) => store), logs: logs);
        IAsyncApiClient client = host.Client();

        string id = await client.SubmitTextAsync("x");
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
        store.ReleaseMark();

        await Eventually.WaitUntilAsync(() => logs.Entries.Any(e => e.EventId.Id == 216 && e.Level == LogLevel.Warning), Wait, "the failed mark logged");
    }

    [Fact]
    public async Task RunningBeforeItsMarkIsStored_StatusSaysInProgress_WithoutReadingTheStore()
    {
        var store = new HeldMarkStore(new InMemoryAsyncResultStore());
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o => o.StoreFactory = (_, _) => store));
        IAsyncApiClient client = host.Client();
        string id = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(() => host.Probe.StartedIds.Contains(id), Wait, "the handler to start");
        int readsBefore = store.Reads;

        AsyncRequestStatus running = await client.GetStatusAsync(id); // the store still reads it queued: its mark is held

        Assert.Equal(AsyncRequestState.InProgress, running.State);
        Assert.Equal(AsyncRequestState.InQueue, (await store.GetAsync(id))!.State);
        Assert.Equal(readsBefore + 1, store.Reads); // only the read just above, by the test itself
        host.Probe.Gate.SetResult();
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
    }

    /// <summary>A store whose in-progress marks wait until <see cref="ReleaseMark"/> (then fail, or reach the inner store).</summary>
    private sealed class HeldMarkStore(IAsyncResultStore inner, bool failMark = false) : IAsyncResultStore
    {
        public TaskCompletionSource MarkReleased { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<bool> MarkResult { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool IsDurable => inner.IsDurable;

        public void ReleaseMark() => MarkReleased.TrySetResult();

        public async ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            await MarkReleased.Task.ConfigureAwait(false);
            if (failMark)
            {
                throw new AsyncStoreUnavailableException("The store is down (test).");
            }

            bool marked = await inner.TryMarkInProgressAsync(requestId, at, cancellationToken);
            MarkResult.TrySetResult(marked);
            return marked;
        }

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

        public int Reads => Volatile.Read(ref _reads);

        private int _reads;

        public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _reads);
            return inner.GetAsync(requestId, includePayload, cancellationToken);
        }

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

        public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryFailAsync(requestId, errorText, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync()
        {
            ReleaseMark();
            return inner.DisposeAsync();
        }
    }
}
