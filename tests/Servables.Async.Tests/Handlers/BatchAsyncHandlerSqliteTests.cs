using Servables.Testing;

namespace Servables.Async.Tests.Handlers;

/// <summary>Every <see cref="BatchAsyncHandlerTests"/> test again over the SQLite store (durable: a stop out of time keeps what it abandons).</summary>
public sealed class BatchAsyncHandlerSqliteTests : BatchAsyncHandlerTests, IDisposable
{
    private readonly TempFolder _folder = new();

    protected override bool Durable => true;

    public void Dispose() => _folder.Dispose();

    protected override void UseStore(AsyncApiOptions options) => options.UseSqliteStore(_folder.Combine($"batch-{Guid.NewGuid():N}.db"));
}
