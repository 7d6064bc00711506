using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;

namespace Servables.Benchmarks.Core;

/// <summary>
/// The handle hot path on <see cref="Threads"/> threads at once, all leasing the same version (so
/// all of them update one lease count), against the same baseline on one shared count.
/// </summary>
/// <remarks>
/// Each invocation runs <see cref="OperationsPerThread"/> operations on every thread: the
/// benchmark thread plus <see cref="Threads"/> − 1 workers started once in setup and released by
/// a <see cref="Barrier"/>, so thread start-up is not measured; the two barrier phases cost a few
/// microseconds against milliseconds of work. Reported times are wall time divided by all
/// operations on all threads (inverse throughput): one thread's latency per operation is about
/// <see cref="Threads"/> times the reported mean.
/// </remarks>
[MemoryDiagnoser]
public class ServableHandleContendedBenchmarks
{
    public const int Threads = 2;
    public const int OperationsPerThread = 100_000;
    private const int OperationsPerInvoke = Threads * OperationsPerThread;

    private readonly ConcurrentDictionary<string, LeaseEntry> _entries = new(StringComparer.Ordinal);
    private readonly long[] _workerResults = new long[Threads * 16]; // One slot per 128 bytes: no false sharing between workers.
    private AspiredVersionsManager _manager = null!;
    private ServableRequest _request;
    private string _key = null!;
    private Barrier _start = null!;
    private Barrier _done = null!;
    private Thread[] _workers = [];
    private Func<long> _baselineLoop = null!;
    private Func<long> _getHandleLoop = null!;
    private Func<long> _tryGetHandleLoop = null!;
    private Func<long>? _operation;
    private volatile bool _stopping;

    [GlobalSetup]
    public void Setup()
    {
        var model = new StubModel();
        _manager = SingleModelManager.Start(model);
        _key = SingleModelManager.Name;
        _request = ServableRequest.Latest(_key);
        _entries[_key] = new LeaseEntry(model);

        // Delegates built once, so that invocations allocate nothing of their own.
        _baselineLoop = BaselineLoop;
        _getHandleLoop = GetHandleLoop;
        _tryGetHandleLoop = TryGetHandleLoop;

        _start = new Barrier(Threads);
        _done = new Barrier(Threads);
        _workers = new Thread[Threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int slot = (i + 1) * 16;
            _workers[i] = new Thread(() => RunWorker(slot)) { IsBackground = true, Name = $"bench-worker-{i + 1}" };
            _workers[i].Start();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stopping = true;
        _start.SignalAndWait();
        foreach (Thread worker in _workers)
        {
            worker.Join();
        }

        _start.Dispose();
        _done.Dispose();
        _manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = OperationsPerInvoke)]
    public long ConcurrentDictionaryLeaseBaseline() => RunOnAllThreads(_baselineLoop);

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke)]
    public long GetServableHandleLatest() => RunOnAllThreads(_getHandleLoop);

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke)]
    public long TryGetServableHandleLatest() => RunOnAllThreads(_tryGetHandleLoop);

    private long RunOnAllThreads(Func<long> loop)
    {
        _operation = loop;
        _start.SignalAndWait(); // Publishes _operation to the workers (the barrier is a full fence).
        long total = loop();
        _done.SignalAndWait();
        for (int i = 1; i < Threads; i++)
        {
            total += _workerResults[i * 16];
        }

        return total;
    }

    private void RunWorker(int slot)
    {
        while (true)
        {
            _start.SignalAndWait();
            if (_stopping)
            {
                return;
            }

            _workerResults[slot] = _operation!();
            _done.SignalAndWait();
        }
    }

    private long BaselineLoop()
    {
        ConcurrentDictionary<string, LeaseEntry> entries = _entries;
        string key = _key;
        long sum = 0;
        for (int i = 0; i < OperationsPerThread; i++)
        {
            if (entries.TryGetValue(key, out LeaseEntry? entry))
            {
                Interlocked.Increment(ref entry.Count);
                sum += entry.Model.Width;
                Interlocked.Decrement(ref entry.Count);
            }
        }

        return sum;
    }

    private long GetHandleLoop()
    {
        AspiredVersionsManager manager = _manager;
        ServableRequest request = _request;
        long sum = 0;
        for (int i = 0; i < OperationsPerThread; i++)
        {
            using ServableHandle<StubModel> handle = manager.GetServableHandle<StubModel>(request);
            sum += handle.Value.Width;
        }

        return sum;
    }

    private long TryGetHandleLoop()
    {
        AspiredVersionsManager manager = _manager;
        ServableRequest request = _request;
        long sum = 0;
        for (int i = 0; i < OperationsPerThread; i++)
        {
            if (manager.TryGetServableHandle(request, out ServableHandle<StubModel> handle))
            {
                using (handle)
                {
                    sum += handle.Value.Width;
                }
            }
        }

        return sum;
    }
}
