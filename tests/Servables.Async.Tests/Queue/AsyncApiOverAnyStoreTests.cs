using Servables.Async.Tests.Results;

namespace Servables.Async.Tests.Queue;

/// <summary>
/// Every <see cref="AsyncApiTests"/> test again, over a store that is only an <see cref="IAsyncResultStore"/>,
/// so the API keeps its live requests beside the store (as it does for the SQLite store of Servables.Sqlite or a custom store).
/// </summary>
public sealed class AsyncApiOverAnyStoreTests : AsyncApiTests
{
    protected override bool IdsBeginWithTheTime => true;

    protected override void UseStore(AsyncApiOptions options) =>
        options.StoreFactory = (_, storeOptions) => new ForwardingResultStore(new InMemoryAsyncResultStore(storeOptions));
}
