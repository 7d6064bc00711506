using Servables.Async.Tests.Results;
using Servables.Testing;

namespace Servables.Redis.Tests.Results;

/// <summary>The shared result-store contract against a real Redis (each test class gets its own server).</summary>
public sealed class RedisAsyncResultStoreContractTests : ResultStoreContractTests
{
    private RedisServer? _server;

    public override async Task InitializeAsync()
    {
        if (RedisServer.Binary is null)
        {
            return; // each test skips, saying why
        }

        _server = await RedisServer.StartAsync();
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    protected override void SkipUnlessAvailable() => RedisAvailable.SkipIfMissing();

    protected override IAsyncResultStore CreateStore(AsyncResultStoreOptions options) =>
        new RedisAsyncResultStore(new RedisAsyncResultStoreOptions { Configuration = _server!.Configuration, KeyPrefix = "contract" }, options);
}
