using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Servables.Testing;

namespace Servables.Async.Tests.Queue;

/// <summary>Start-up recovery over a durable store that does not page (the contract's default): the backlog takes queue slots as submits do, and all of it runs.</summary>
public sealed class AsyncApiRecoveryTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Start_BacklogLargerThanTheQueue_QueuedAsLanesMakeRoom_NewSubmitsRefusedWhileFull_AllComplete()
    {
        var kept = new InMemoryAsyncResultStore();
        DateTimeOffset at = DateTimeOffset.UtcNow;
        Assert.True(await kept.TryAddAsync(Record("gate-0", "gate", at)));
        for (int i = 1; i <= 10; i++)
        {
            Assert.True(await kept.TryAddAsync(Record($"r-{i}", $"r{i}", at.AddTicks(i))));
        }

        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o =>
            (o.QueueCapacity, o.StoreFactory) = (3, (_, _) => new DurableStore(kept))));
        IAsyncApiClient client = host.Client();

        // The lane holds the gate and the queue's 3 slots hold the backlog, so a new submit is refused as full.
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync("gate-0")).State == AsyncRequestState.InProgress);
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                await client.SubmitTextAsync("new");
                return false;
            }
            catch (AsyncQueueFullException)
            {
                return true;
            }
        });

        host.Probe.Gate.SetResult();
        for (int i = 1; i <= 10; i++)
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync($"r-{i}", Wait);
            Assert.Contains($"\"text\":\"r{i}\"", done.ResultJson, StringComparison.Ordinal);
        }

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("after"), Wait)).State);
    }

    private static AsyncRequestRecord Record(string id, string text, DateTimeOffset at) => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "text/plain",
        Payload = Encoding.UTF8.GetBytes(text),
        SubmittedAt = at,
        UpdatedAt = at,
    };

    /// <summary>An in-memory store that says it is durable (its requests outlive the API), behind the plain interface, without paging.</summary>
    private sealed class DurableStore(IAsyncResultStore inner) : IAsyncResultStore
    {
        public bool IsDurable => true;

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => inner.TryAddAsync(request, cancellationToken);

        public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => inner.GetAsync(requestId, includePayload, cancellationToken);

        public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryMarkInProgressAsync(requestId, at, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);

        public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.TryFailAsync(requestId, errorText, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => inner.GetUnfinishedAsync(cancellationToken);

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
