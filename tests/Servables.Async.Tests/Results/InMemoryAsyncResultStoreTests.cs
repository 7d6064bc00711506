namespace Servables.Async.Tests.Results;

public sealed class InMemoryAsyncResultStoreTests : ResultStoreContractTests
{
    protected override IAsyncResultStore CreateStore(AsyncResultStoreOptions options) => new InMemoryAsyncResultStore(options);

    [Fact]
    public async Task TryAddAsync_Full_EvictsExpiredFirstThenOldestFinished()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 3, TimeProvider = Time, Retention = Retention });
        await store.TryAddAsync(NewRequest("done-old"));
        await store.TryCompleteAsync("done-old", "1", Time.GetUtcNow());
        await store.TryAddAsync(NewRequest("done-new"));
        await store.TryCompleteAsync("done-new", "2", Time.GetUtcNow());
        await store.TryAddAsync(NewRequest("queued"));

        Assert.True(await store.TryAddAsync(NewRequest("x")));
        Assert.Null(await store.GetAsync("done-old")); // oldest finished evicted
        Assert.NotNull(await store.GetAsync("done-new"));
        Assert.NotNull(await store.GetAsync("queued"));
        Assert.Equal(3, store.Count);

        Assert.True(await store.TryAddAsync(NewRequest("y")));
        Assert.Null(await store.GetAsync("done-new"));
        await Assert.ThrowsAsync<AsyncStoreFullException>(async () => await store.TryAddAsync(NewRequest("z")));
        Assert.NotNull(await store.GetAsync("queued")); // unfinished requests are never evicted
    }
}
