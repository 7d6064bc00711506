using Microsoft.Extensions.DependencyInjection;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Async.Tests.Handlers;

/// <summary>Every <see cref="BatchAsyncHandlerTests"/> test again over the SQLite store (durable: a stop out of time keeps what it abandons), and a restart.</summary>
public sealed class BatchAsyncHandlerSqliteTests : BatchAsyncHandlerTests, IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly TempFolder _folder = new();

    protected override bool Durable => true;

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task RequestsKeptByAStopOutOfTime_RunInBatchesAtTheNextStart()
    {
        string path = _folder.Combine("restart.db");
        void Configure(AsyncApiOptions o) => o.UseSqliteStore(path).Batching = new BatchQueueOptions { MaxBatchSize = 4 };
        AsyncHost first = await AsyncHost.StartAsync(s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>(Configure));
        IAsyncApiClient client = first.Client();
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(() => first.Host.Services.GetRequiredService<BatchProbe>().Batches == 1, Wait, "the first batch to start");
        string[] waiting = [await client.SubmitTextAsync("k1"), await client.SubmitTextAsync("k2"), await client.SubmitTextAsync("k3")];
        using (var shutdownTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
        {
            await first.Host.StopAsync(shutdownTimeout.Token).WaitAsync(Wait);
        }

        await first.DisposeAsync();

        await using AsyncHost second = await AsyncHost.StartAsync(s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>(Configure));
        BatchProbe probe = second.Host.Services.GetRequiredService<BatchProbe>();
        probe.Gate.SetResult(); // "gate" runs again (at-least-once) and passes this time
        foreach (string id in (string[])[running, .. waiting])
        {
            AsyncRequestStatus done = await second.Client().WaitForCompletionAsync(id, Wait);
            Assert.Equal(AsyncRequestState.Completed, done.State);
            Assert.Equal(id, done.Result!.Value.GetProperty("id").GetString());
        }

        Assert.Equal(4, probe.BatchSizes.Sum());
        Assert.All(probe.BatchSizes, size => Assert.InRange(size, 1, 4));
    }

    protected override void UseStore(AsyncApiOptions options) => options.UseSqliteStore(_folder.Combine($"batch-{Guid.NewGuid():N}.db"));
}
