using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;

namespace Servables.Benchmarks.Core;

/// <summary>
/// The handle hot path on one thread: acquire a handle on the latest version, read the servable,
/// dispose the handle. The baseline is the honest hand-written alternative: a concurrent
/// dictionary of models with an interlocked reference count.
/// </summary>
[MemoryDiagnoser]
public class ServableHandleBenchmarks
{
    private readonly ConcurrentDictionary<string, LeaseEntry> _entries = new(StringComparer.Ordinal);
    private AspiredVersionsManager _manager = null!;
    private ServableRequest _request;
    private string _key = null!;

    [GlobalSetup]
    public void Setup()
    {
        var model = new StubModel();
        _manager = SingleModelManager.Start(model);

        // Built once, so that both sides hash the same, already-built string on every call.
        _key = SingleModelManager.Name;
        _request = ServableRequest.Latest(_key);
        _entries[_key] = new LeaseEntry(model);
    }

    [GlobalCleanup]
    public void Cleanup() => _manager.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Baseline = true)]
    public int ConcurrentDictionaryLeaseBaseline()
    {
        if (!_entries.TryGetValue(_key, out LeaseEntry? entry))
        {
            return -1;
        }

        Interlocked.Increment(ref entry.Count);
        int width = entry.Model.Width;
        Interlocked.Decrement(ref entry.Count);
        return width;
    }

    [Benchmark]
    public int GetServableHandleLatest()
    {
        using ServableHandle<StubModel> handle = _manager.GetServableHandle<StubModel>(_request);
        return handle.Value.Width;
    }

    [Benchmark]
    public int TryGetServableHandleLatest()
    {
        if (!_manager.TryGetServableHandle(_request, out ServableHandle<StubModel> handle))
        {
            return -1;
        }

        using (handle)
        {
            return handle.Value.Width;
        }
    }
}
