using Microsoft.Extensions.DependencyInjection;
using Servables.Async.Tests.Queue;

namespace Servables.Async.Tests.Handlers;

/// <summary>A batched API over a failing result store: each request of a batch keeps the unbatched path's store retries and fallbacks.</summary>
public sealed class BatchAsyncHandlerStoreFailureTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task StoreRefusesStartsAndFirstOutcomes_RequestsRunAnyway_RetriesStoreTheirResults()
    {
        var store = new FlakyStore { FailMarks = true, CompleteFailuresLeft = 2 };
        await using AsyncHost host = await StartAsync(store, retries: 3);
        IAsyncApiClient client = host.Client();

        string[] texts = ["one", "two", "three"];
        string[] ids = await Task.WhenAll(texts.Select(t => client.SubmitTextAsync(t).AsTask()));

        for (int i = 0; i < ids.Length; i++)
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync(ids[i], Wait);
            Assert.Equal(AsyncRequestState.Completed, done.State);
            Assert.Equal(texts[i].ToUpperInvariant(), done.Result!.Value.GetProperty("upper").GetString());
        }

        Assert.Equal(0, store.CompleteFailuresLeft); // two outcomes were stored on a retry
        Assert.True(store.MarksRefused >= 3);
    }

    [Fact]
    public async Task StoreRefusesEveryOutcome_EachRequestReportedFailedInProcess_ApiGoesOn()
    {
        var store = new FlakyStore { CompleteFailuresLeft = int.MaxValue, FailFails = true };
        await using AsyncHost host = await StartAsync(store, retries: 1);
        IAsyncApiClient client = host.Client();

        string[] ids = await Task.WhenAll(new[] { "a", "b" }.Select(t => client.SubmitTextAsync(t).AsTask()));

        foreach (string id in ids)
        {
            AsyncRequestStatus failed = await client.WaitForCompletionAsync(id, Wait);
            Assert.Equal(AsyncRequestState.Failed, failed.State);
            Assert.StartsWith("The request completed, but its outcome could not be stored in the result store (IOException: disk gone)", failed.Error, StringComparison.Ordinal);
        }

        store.CompleteFailuresLeft = 0;
        store.FailFails = false;
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("later"), Wait)).State);
    }

    private static Task<AsyncHost> StartAsync(FlakyStore store, int retries) =>
        AsyncHost.StartAsync(s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>(o =>
        {
            (o.StoreRetries, o.StoreRetryDelay) = (retries, TimeSpan.FromMilliseconds(1));
            o.StoreFactory = (_, options) => store.Wrap(new InMemoryAsyncResultStore(options));
        }));

    /// <summary>A plain store in front of an in-memory one whose writes fail as told, as a store on a failing disk would.</summary>
    private sealed class FlakyStore : IAsyncResultStore
    {
        private IAsyncResultStore? _inner;
        private int _completeFailuresLeft;
        private int _marksRefused;

        public volatile bool FailMarks;

        public volatile bool FailFails;

        public int CompleteFailuresLeft
        {
            get => Volatile.Read(ref _completeFailuresLeft);
            set => Volatile.Write(ref _completeFailuresLeft, value);
        }

        public int MarksRefused => Volatile.Read(ref _marksRefused);

        public bool IsDurable => false;

        private IAsyncResultStore Inner => _inner!;

        public IAsyncResultStore Wrap(IAsyncResultStore inner)
        {
            _inner = inner;
            return this;
        }

        public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => Inner.TryAddAsync(request, cancellationToken);

        public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => Inner.GetAsync(requestId, includePayload, cancellationToken);

        public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            if (FailMarks)
            {
                Interlocked.Increment(ref _marksRefused);
                throw new IOException("disk gone");
            }

            return Inner.TryMarkInProgressAsync(requestId, at, cancellationToken);
        }

        public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            int left = Volatile.Read(ref _completeFailuresLeft);
            while (left > 0)
            {
                if (Interlocked.CompareExchange(ref _completeFailuresLeft, left == int.MaxValue ? left : left - 1, left) == left)
                {
                    throw new IOException("disk gone");
                }

                left = Volatile.Read(ref _completeFailuresLeft);
            }

            return Inner.TryCompleteAsync(requestId, resultJson, at, cancellationToken);
        }

        public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) =>
            FailFails ? throw new IOException("disk gone") : Inner.TryFailAsync(requestId, errorText, at, cancellationToken);

        public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => Inner.GetUnfinishedAsync(cancellationToken);

        public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => Inner.RemoveExpiredAsync(cancellationToken);

        public ValueTask DisposeAsync() => Inner.DisposeAsync();
    }
}
