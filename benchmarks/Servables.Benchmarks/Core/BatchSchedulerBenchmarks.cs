using System.Threading.Channels;
using BenchmarkDotNet.Attributes;

namespace Servables.Benchmarks.Core;

/// <summary>
/// The batch scheduler's own cost per task: <see cref="Callers"/> concurrent callers each schedule
/// <see cref="TasksPerCaller"/> tasks one after another (awaiting each) into a queue whose batch
/// function does nothing. The baseline is the hand-rolled alternative: a <see cref="Channel{T}"/> to one
/// consumer that reads whatever is queued (up to the batch size) as a batch and completes each
/// caller's task source.
/// </summary>
[MemoryDiagnoser]
public class BatchSchedulerBenchmarks
{
    private const int Callers = 16;
    private const int TasksPerCaller = 64;
    private const int MaxBatchSize = 32;

    private BatchScheduler<NoOpTask> _scheduler = null!;
    private BatchQueue<NoOpTask> _queue = null!;
    private Channel<TaskCompletionSource> _channel = null!;
    private Task _consumer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _scheduler = new BatchScheduler<NoOpTask>();
        _queue = _scheduler.AddQueue("noop", static (_, _) => ValueTask.CompletedTask, new BatchQueueOptions { MaxBatchSize = MaxBatchSize, MaxEnqueuedBatches = 64 });
        _channel = Channel.CreateUnbounded<TaskCompletionSource>(new UnboundedChannelOptions { SingleReader = true });
        _consumer = Task.Run(ConsumeAsync);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _channel.Writer.Complete();
        _consumer.GetAwaiter().GetResult();
        _queue.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _scheduler.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Callers * TasksPerCaller)]
    public Task ChannelBatcher() => RunCallersAsync(static async (self) =>
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await self._channel.Writer.WriteAsync(done).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
    });

    [Benchmark(OperationsPerInvoke = Callers * TasksPerCaller)]
    public Task Scheduler() => RunCallersAsync(static self => self._queue.ScheduleAsync(NoOpTask.One));

    private Task RunCallersAsync(Func<BatchSchedulerBenchmarks, Task> scheduleOne)
    {
        var callers = new Task[Callers];
        for (int i = 0; i < Callers; i++)
        {
            callers[i] = Task.Run(async () =>
            {
                for (int n = 0; n < TasksPerCaller; n++)
                {
                    await scheduleOne(this).ConfigureAwait(false);
                }
            });
        }

        return Task.WhenAll(callers);
    }

    private async Task ConsumeAsync()
    {
        var batch = new List<TaskCompletionSource>(MaxBatchSize);
        while (await _channel.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < MaxBatchSize && _channel.Reader.TryRead(out TaskCompletionSource? item))
            {
                batch.Add(item);
            }

            foreach (TaskCompletionSource item in batch)
            {
                item.TrySetResult();
            }

            batch.Clear();
        }
    }

    /// <summary>A task of size 1 that the batch function ignores.</summary>
    public sealed class NoOpTask : IBatchTask
    {
        public static readonly NoOpTask One = new();

        public int Size => 1;
    }
}
