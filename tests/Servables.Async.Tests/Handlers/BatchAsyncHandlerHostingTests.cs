using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Async.Tests.Handlers;

/// <summary>Registering a batched handler: which contract a class implements, the batching options' validation, and its metrics.</summary>
public sealed class BatchAsyncHandlerHostingTests
{
    [Fact]
    public void AddAsyncHandler_ClassImplementingBothContractsOrNeither_ThrowsNamingIt()
    {
        var services = new ServiceCollection();

        InvalidOperationException both = Assert.Throws<InvalidOperationException>(() => services.AddAsyncHandler<BothHandler>("both"));
        Assert.Contains("implements both IAsyncHandler and IBatchAsyncHandler", both.Message, StringComparison.Ordinal);
        Assert.Contains(nameof(BothHandler), both.Message, StringComparison.Ordinal);
        InvalidOperationException neither = Assert.Throws<InvalidOperationException>(() => services.AddAsyncHandler<NeitherHandler>("neither"));
        Assert.Contains("implements neither IAsyncHandler nor IBatchAsyncHandler", neither.Message, StringComparison.Ordinal);
        Assert.Empty(services); // nothing half-registered
    }

    [Fact]
    public async Task BatchingOnAOneRequestHandler_FailsHostStartNamingIt()
    {
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("single", o => o.Batching = new BatchQueueOptions())));
        Assert.Contains("Async API 'single': Batching is set, but handler", error.Message, StringComparison.Ordinal);
        Assert.Contains("implements IAsyncHandler", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidBatchingOptions_FailHostStartNamingThem()
    {
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            AsyncHost.StartAsync(s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>("batched", o =>
            {
                o.Batching = new BatchQueueOptions { MaxBatchSize = 0 };
                (o.WorkerCount, o.MaxConcurrencyPerWorker) = (2, 200);
            })));
        Assert.Contains("Async API 'batched': Batching: MaxBatchSize", error.Message, StringComparison.Ordinal);
        Assert.Contains("at most 256; it is 2 × 200", error.Message, StringComparison.Ordinal);

        var allowed = new AsyncApiOptions { Batching = new BatchQueueOptions { MaxBatchSize = 8 } };
        allowed.Batching.AllowedBatchSizes.Add(4);
        Assert.Contains(allowed.Validate(), e => e.StartsWith("Batching: AllowedBatchSizes must end at MaxBatchSize", StringComparison.Ordinal));
        Assert.Empty(new AsyncApiOptions { Batching = new BatchQueueOptions() }.Validate());
        Assert.Null(new AsyncApiOptions().Batching);
    }

    [Fact]
    public async Task HealthCheck_BatchedApi_HealthyWithItsOneFeedingLane_UnhealthyOnceStopped()
    {
        AsyncHost host = await AsyncHost.StartAsync(s =>
        {
            s.AddHealthChecks().AddAsyncApis();
            s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>("batched", o => o.WorkerCount = 2);
        });
        HealthCheckService health = host.Host.Services.GetRequiredService<HealthCheckService>();

        HealthReportEntry running = (await health.CheckHealthAsync()).Entries["async-api:batched"];
        Assert.Equal(HealthStatus.Healthy, running.Status);
        Assert.Equal((1, 1), ((int)running.Data["lanes"], (int)running.Data["lanes_alive"]));

        await host.Host.StopAsync();
        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync()).Entries["async-api:batched"].Status);
        await host.DisposeAsync();
    }

    [Fact]
    public async Task BatchedApi_RecordsCoreBatchMetrics_AsyncOutcomes_AndTheHandlersOwn()
    {
        string api = $"b{Guid.NewGuid():N}";
        var seen = new List<(string Name, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name is "Servables.Core" or "Servables.Async" or "Servables.Async.Handlers")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument i, double v, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var bag = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> t in tags)
            {
                bag[t.Key] = t.Value;
            }

            if (Equals(bag.GetValueOrDefault("api"), api) || Equals(bag.GetValueOrDefault("queue"), "async:" + api))
            {
                lock (seen)
                {
                    seen.Add((i.Name, v, bag));
                }
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddSingleton<BatchProbe>().AddAsyncHandler<RecordingBatchHandler>(api));
        IAsyncApiClient client = host.Client(api);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("ok"), TimeSpan.FromSeconds(10))).State);
        Assert.Equal(AsyncRequestState.Failed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("fail"), TimeSpan.FromSeconds(10))).State);

        // An outcome is counted just after it is stored, which is what wakes the waiter: wait for the second count.
        await Eventually.WaitUntilAsync(
            () =>
            {
                lock (seen)
                {
                    return seen.Count(m => m.Name == "servables.async.requests") == 2;
                }
            },
            TimeSpan.FromSeconds(10),
            "both outcomes to be counted");
        lock (seen)
        {
            Assert.Equal(2, seen.Count(m => m.Name == "servables.batch.size" && m.Value == 1));
            Assert.Equal(2, seen.Count(m => m.Name == "servables.batch.queue_delay"));
            Assert.Single(seen, m => m.Name == "servables.async.requests" && Equals(m.Tags["status"], "completed"));
            Assert.Single(seen, m => m.Name == "servables.async.requests" && Equals(m.Tags["status"], "failed"));
            Assert.Equal(2, seen.Count(m => m.Name == "servables.async.handle.duration"));
            Assert.Equal(2, seen.Count(m => m.Name == "servables.async.queue.wait"));
            Assert.Equal(0, seen.Where(m => m.Name == "servables.async.in_flight").Sum(m => m.Value));
            Assert.Equal(2, seen.Where(m => m.Name == "batch.calls").Sum(m => m.Value));
        }
    }

    public sealed class BothHandler : IAsyncHandler, IBatchAsyncHandler
    {
        public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken) => new((object?)null);

        public ValueTask<IReadOnlyList<AsyncBatchResult>> HandleBatchAsync(IReadOnlyList<AsyncBatchRequest> requests, CancellationToken cancellationToken) =>
            new([.. requests.Select(_ => AsyncBatchResult.Success(null))]);
    }

    public sealed class NeitherHandler
    {
    }
}
