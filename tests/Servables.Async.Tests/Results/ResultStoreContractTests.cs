using System.Text;
using Microsoft.Extensions.Time.Testing;

namespace Servables.Async.Tests.Results;

/// <summary>The behaviour every <see cref="IAsyncResultStore"/> must have; one derived class per store.</summary>
public abstract class ResultStoreContractTests : IAsyncLifetime
{
    protected static readonly TimeSpan Retention = TimeSpan.FromDays(7);

    private IAsyncResultStore? _store;

    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero));

    protected IAsyncResultStore Store
    {
        get
        {
            SkipUnlessAvailable();
            return _store ?? throw new InvalidOperationException("not initialised");
        }
    }

    /// <summary>Skips the test (with the reason) when the store's server is not installed here; stores without one always run.</summary>
    protected virtual void SkipUnlessAvailable()
    {
    }

    /// <summary>Creates the store under test with <see cref="Retention"/> and <see cref="Time"/>.</summary>
    protected abstract IAsyncResultStore CreateStore(AsyncResultStoreOptions options);

    /// <summary>Whether the store removes results itself as they expire (so <see cref="IAsyncResultStore.RemoveExpiredAsync"/> finds none left).</summary>
    protected virtual bool RemovesExpiredItself => false;

    public virtual Task InitializeAsync()
    {
        _store = CreateStore(new AsyncResultStoreOptions { Retention = Retention, TimeProvider = Time });
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    protected AsyncRequestRecord NewRequest(string id, string body = "{\"x\":1}") => new()
    {
        Id = id,
        State = AsyncRequestState.InQueue,
        ContentType = "application/json",
        Payload = Encoding.UTF8.GetBytes(body),
        SubmittedAt = Time.GetUtcNow(),
        UpdatedAt = Time.GetUtcNow(),
    };

    [SkippableFact]
    public async Task TryAddAsync_NewId_StoredInQueueWithPayload()
    {
        Assert.True(await Store.TryAddAsync(NewRequest("a", "{\"v\":42}")));

        AsyncRequestRecord? withPayload = await Store.GetAsync("a", includePayload: true);
        Assert.NotNull(withPayload);
        Assert.Equal(AsyncRequestState.InQueue, withPayload.State);
        Assert.Equal("application/json", withPayload.ContentType);
        Assert.Equal("{\"v\":42}", Encoding.UTF8.GetString(withPayload.Payload.Span));
        Assert.Equal(Time.GetUtcNow(), withPayload.SubmittedAt);

        AsyncRequestRecord? withoutPayload = await Store.GetAsync("a");
        Assert.True(withoutPayload!.Payload.IsEmpty);
    }

    [SkippableFact]
    public async Task TryAddAsync_EmptyPayload_StoredAndReadBackEmpty_ThenCompletes()
    {
        Assert.True(await Store.TryAddAsync(NewRequest("empty", string.Empty) with { ContentType = "application/octet-stream" }));

        AsyncRequestRecord? stored = await Store.GetAsync("empty", includePayload: true);
        Assert.Equal((AsyncRequestState.InQueue, "application/octet-stream", 0), (stored!.State, stored.ContentType, stored.Payload.Length));
        Assert.True(await Store.TryCompleteAsync("empty", "{}", Time.GetUtcNow()));
        Assert.Equal(AsyncRequestState.Completed, (await Store.GetAsync("empty"))!.State);
    }

    [SkippableFact]
    public async Task TryAddAsync_ExistingId_ReturnsFalseAndKeepsOriginal()
    {
        Assert.True(await Store.TryAddAsync(NewRequest("a", "1")));
        Assert.False(await Store.TryAddAsync(NewRequest("a", "2")));
        Assert.Equal("1", Encoding.UTF8.GetString((await Store.GetAsync("a", includePayload: true))!.Payload.Span));
    }

    [SkippableFact]
    public async Task GetAsync_Unknown_ReturnsNull() => Assert.Null(await Store.GetAsync("nope"));

    [SkippableFact]
    public async Task Lifecycle_QueueProgressComplete_StoresResult()
    {
        await Store.TryAddAsync(NewRequest("a"));
        Time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await Store.TryMarkInProgressAsync("a", Time.GetUtcNow()));
        Assert.Equal(AsyncRequestState.InProgress, (await Store.GetAsync("a"))!.State);
        Assert.False(await Store.TryMarkInProgressAsync("a", Time.GetUtcNow()));

        Time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await Store.TryCompleteAsync("a", "{\"y\":2}", Time.GetUtcNow()));

        AsyncRequestRecord done = (await Store.GetAsync("a"))!;
        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("{\"y\":2}", done.ResultJson);
        Assert.Equal(Time.GetUtcNow(), done.UpdatedAt);
        Assert.Null(done.Error);
    }

    [SkippableFact]
    public async Task Finished_NeverChangesAgain()
    {
        await Store.TryAddAsync(NewRequest("a"));
        Assert.True(await Store.TryFailAsync("a", "boom", Time.GetUtcNow()));
        Assert.False(await Store.TryCompleteAsync("a", "{}", Time.GetUtcNow()));
        Assert.False(await Store.TryFailAsync("a", "again", Time.GetUtcNow()));
        Assert.False(await Store.TryMarkInProgressAsync("a", Time.GetUtcNow()));

        AsyncRequestRecord failed = (await Store.GetAsync("a"))!;
        Assert.Equal(AsyncRequestState.Failed, failed.State);
        Assert.Equal("boom", failed.Error);
    }

    [SkippableFact]
    public async Task QueuedRequest_CanFailWithoutRunning()
    {
        await Store.TryAddAsync(NewRequest("a"));
        Assert.True(await Store.TryFailAsync("a", "cancelled", Time.GetUtcNow()));
        Assert.False(await Store.TryMarkInProgressAsync("a", Time.GetUtcNow()));
    }

    [SkippableFact]
    public async Task Retention_CountsFromCompletion_ThenNotFound()
    {
        await Store.TryAddAsync(NewRequest("a"));
        Time.Advance(TimeSpan.FromDays(30)); // a long wait in the queue does not count
        Assert.NotNull(await Store.GetAsync("a"));
        await Store.TryCompleteAsync("a", "1", Time.GetUtcNow());

        Time.Advance(Retention - TimeSpan.FromSeconds(1));
        Assert.NotNull(await Store.GetAsync("a"));
        Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(await Store.GetAsync("a"));

        // An expired id can be used again.
        Assert.True(await Store.TryAddAsync(NewRequest("a")));
    }

    [SkippableFact]
    public async Task RemoveExpiredAsync_DeletesOnlyExpiredFinished()
    {
        await Store.TryAddAsync(NewRequest("old"));
        await Store.TryCompleteAsync("old", "1", Time.GetUtcNow());
        await Store.TryAddAsync(NewRequest("queued"));
        Time.Advance(Retention);
        await Store.TryAddAsync(NewRequest("fresh"));
        await Store.TryFailAsync("fresh", "x", Time.GetUtcNow());

        Assert.Equal(RemovesExpiredItself ? 0 : 1, await Store.RemoveExpiredAsync());
        Assert.Null(await Store.GetAsync("old"));
        Assert.NotNull(await Store.GetAsync("queued"));
        Assert.NotNull(await Store.GetAsync("fresh"));
    }

    [SkippableFact]
    public async Task GetUnfinishedAsync_ReturnsQueuedAndInProgressOldestFirstWithPayloads()
    {
        await Store.TryAddAsync(NewRequest("first", "1"));
        Time.Advance(TimeSpan.FromMilliseconds(5));
        await Store.TryAddAsync(NewRequest("second", "2"));
        Time.Advance(TimeSpan.FromMilliseconds(5));
        await Store.TryAddAsync(NewRequest("done", "3"));
        await Store.TryMarkInProgressAsync("first", Time.GetUtcNow());
        await Store.TryCompleteAsync("done", "{}", Time.GetUtcNow());

        IReadOnlyList<AsyncRequestRecord> unfinished = await Store.GetUnfinishedAsync();
        Assert.Equal(["first", "second"], unfinished.Select(r => r.Id));
        Assert.Equal([AsyncRequestState.InProgress, AsyncRequestState.InQueue], unfinished.Select(r => r.State));
        Assert.Equal("1", Encoding.UTF8.GetString(unfinished[0].Payload.Span));
    }

    [SkippableFact]
    public async Task ConcurrentWriters_EveryRequestEndsOnce()
    {
        string[] ids = [.. Enumerable.Range(0, 200).Select(i => $"r{i}")];
        await Parallel.ForEachAsync(ids, async (id, ct) =>
        {
            Assert.True(await Store.TryAddAsync(NewRequest(id), ct));
            Assert.True(await Store.TryMarkInProgressAsync(id, Time.GetUtcNow(), ct));
        });
        int completed = 0;
        await Parallel.ForEachAsync(ids.Concat(ids), async (id, ct) =>
        {
            if (await Store.TryCompleteAsync(id, $"\"{id}\"", Time.GetUtcNow(), ct))
            {
                Interlocked.Increment(ref completed);
            }
        });

        Assert.Equal(ids.Length, completed);
        foreach (string id in ids)
        {
            Assert.Equal($"\"{id}\"", (await Store.GetAsync(id))!.ResultJson);
        }
    }
}
