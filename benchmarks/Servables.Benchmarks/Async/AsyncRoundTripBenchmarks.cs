using System.Collections.Concurrent;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Servables.Async;

namespace Servables.Benchmarks.Async;

/// <summary>
/// Submit → complete → status round trips with a no-op handler, a batch of <see cref="Batch"/> at a
/// time, against the hand-rolled alternative: a raw <see cref="Channel{T}"/> to one consumer that
/// writes the result to a <see cref="ConcurrentDictionary{TKey, TValue}"/> and completes a task the
/// producer awaits, then reads the result back. One more row runs a handler that reads the body as
/// JSON and returns it, to show what parsing and serialising add.
/// </summary>
[MemoryDiagnoser]
public class AsyncRoundTripBenchmarks
{
    private const int Batch = 256;
    private static readonly byte[] Body = "{\"x\":1}"u8.ToArray();

    private IHost _memoryHost = null!;
    private IHost _echoHost = null!;
    private IHost _sqliteHost = null!;
    private IAsyncApiClient _memory = null!;
    private IAsyncApiClient _echo = null!;
    private IAsyncApiClient _sqlite = null!;
    private string _sqliteFolder = null!;
    private Channel<WorkItem> _channel = null!;
    private ConcurrentDictionary<string, byte[]> _results = null!;
    private Task _consumer = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _sqliteFolder = Directory.CreateTempSubdirectory("servables-bench-").FullName;
        _memoryHost = StartHost<NoOpHandler>(o => o.QueueCapacity = Batch * 2);
        _echoHost = StartHost<EchoJsonHandler>(o => o.QueueCapacity = Batch * 2);
        _sqliteHost = StartHost<NoOpHandler>(o => o.UseSqliteStore(Path.Combine(_sqliteFolder, "bench.db")).QueueCapacity = Batch * 2);
        _memory = _memoryHost.Services.GetRequiredService<IAsyncApiClient>();
        _echo = _echoHost.Services.GetRequiredService<IAsyncApiClient>();
        _sqlite = _sqliteHost.Services.GetRequiredService<IAsyncApiClient>();

        _channel = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true });
        _results = new ConcurrentDictionary<string, byte[]>();
        _consumer = Task.Run(async () =>
        {
            await foreach (WorkItem item in _channel.Reader.ReadAllAsync())
            {
                _results[item.Id] = item.Body; // the no-op "handler" echoes
                item.Done.TrySetResult();
            }
        });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _channel.Writer.Complete();
        _consumer.GetAwaiter().GetResult();
        _memoryHost.StopAsync().GetAwaiter().GetResult();
        _memoryHost.Dispose();
        _echoHost.StopAsync().GetAwaiter().GetResult();
        _echoHost.Dispose();
        _sqliteHost.StopAsync().GetAwaiter().GetResult();
        _sqliteHost.Dispose();
        Directory.Delete(_sqliteFolder, recursive: true);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public async Task<int> RawChannelAndDictionary()
    {
        var items = new WorkItem[Batch];
        for (int i = 0; i < Batch; i++)
        {
            items[i] = new WorkItem(Interlocked.Increment(ref _next).ToString(System.Globalization.CultureInfo.InvariantCulture), Body);
            _channel.Writer.TryWrite(items[i]);
        }

        int total = 0;
        foreach (WorkItem item in items)
        {
            await item.Done.Task;
            total += _results.TryRemove(item.Id, out byte[]? result) ? result.Length : 0;
        }

        return total;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public Task<int> AsyncApiInMemoryStore() => RoundTripAsync(_memory);

    [Benchmark(OperationsPerInvoke = Batch)]
    public Task<int> AsyncApiInMemoryStoreEchoJson() => RoundTripAsync(_echo);

    [Benchmark(OperationsPerInvoke = Batch)]
    public Task<int> AsyncApiSqliteStore() => RoundTripAsync(_sqlite);

    private static async Task<int> RoundTripAsync(IAsyncApiClient client)
    {
        var ids = new string[Batch];
        for (int i = 0; i < Batch; i++)
        {
            ids[i] = await client.SubmitAsync(Body, "application/json");
        }

        int total = 0;
        foreach (string id in ids)
        {
            AsyncRequestStatus status = await client.WaitForCompletionAsync(id, TimeSpan.FromMinutes(1));
            total += status.ResultJson!.Length;
        }

        return total;
    }

    private static IHost StartHost<THandler>(Action<AsyncApiOptions> configure)
        where THandler : class, IAsyncHandler
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddAsyncHandler<THandler>(configure);
        IHost host = builder.Build();
        host.StartAsync().GetAwaiter().GetResult();
        return host;
    }

    private sealed record WorkItem(string Id, byte[] Body)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Does nothing and returns null (stored as the JSON <c>null</c>), as the baseline's consumer does nothing but store.</summary>
    public sealed class NoOpHandler : IAsyncHandler
    {
        public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken) =>
            ValueTask.FromResult<object?>(null);
    }

    /// <summary>Reads the body as JSON and returns it, so the result is parsed and serialised.</summary>
    public sealed class EchoJsonHandler : IAsyncHandler
    {
        public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken) =>
            ValueTask.FromResult<object?>(payload.Json);
    }
}
