using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using Servables.Onnx;
using Servables.Testing.Onnx;

namespace Servables.Benchmarks.Onnx;

/// <summary>
/// One inference of a small MLP (64 → 128 Relu → 16) through a servable handle and
/// <see cref="OnnxServable.Run(IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, RunOptions?)"/>,
/// against raw <see cref="InferenceSession.Run(RunOptions, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue})"/>
/// on the same session (one intra-op thread). Both read the same input and write into the same preallocated output.
/// </summary>
[MemoryDiagnoser]
public class OnnxRunBenchmarks
{
    private const int Inputs = 64;
    private const int Hidden = 128;
    private const int Outputs = 16;

    private readonly string[] _inputNames = ["X"];
    private readonly string[] _outputNames = ["Y"];
    private readonly ServableRequest _latest = ServableRequest.Latest("mlp");
    private string _folder = null!;
    private InferenceSession _session = null!;
    private RunOptions _runOptions = null!;
    private OrtValue[] _inputs = null!;
    private OrtValue[] _outputs = null!;
    private AspiredVersionsManager _manager = null!;

    /// <summary>Rows per inference.</summary>
    [Params(1, 32)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _folder = Path.Combine(Path.GetTempPath(), $"servables-bench-onnx-{Guid.NewGuid():N}");
        string modelPath = Path.Combine(_folder, "1", "model.onnx");
        var random = new Random(7);
        float[,] w1 = RandomWeights.Matrix(random, Inputs, Hidden), w2 = RandomWeights.Matrix(random, Hidden, Outputs);
        OnnxModelWriter.Mlp(w1, RandomWeights.Vector(random, Hidden), w2, RandomWeights.Vector(random, Outputs)).WriteTo(modelPath);

        _runOptions = new RunOptions();
        _inputs = [OrtValue.CreateTensorValueFromMemory(RandomWeights.Vector(random, Batch * Inputs), [Batch, Inputs])];
        _outputs = [OrtValue.CreateTensorValueFromMemory(new float[Batch * Outputs], [Batch, Outputs])];

        _manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        var id = new ServableId("mlp", 1);
        _manager.SetAspiredVersions("mlp", [ServableData.Create<Loader>(id, new OnnxLoader(id, modelPath, new OnnxServableOptions { IntraOpThreads = 1 }))]);
        for (int i = 0; i < 5 && _manager.ListAvailableServableIds().Count == 0; i++)
        {
            _manager.ManageStateAsync().GetAwaiter().GetResult();
        }

        // The baseline runs the very session the servable wraps, so that the two differ only by the
        // handle and the servable's Run (sessions created separately differ by several percent from
        // one another on their own, which would swamp what is measured here).
        using ServableHandle<OnnxServable> handle = _manager.GetServableHandle<OnnxServable>(_latest); // throws, with the reason, if the version did not load
        _session = handle.Value.Session;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (OrtValue value in _inputs.Concat(_outputs))
        {
            value.Dispose();
        }

        _runOptions.Dispose(); // the session belongs to the servable, which the manager disposed
        Directory.Delete(_folder, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public void RawSessionRun() => _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);

    [Benchmark]
    public void HandleAndServableRun()
    {
        using ServableHandle<OnnxServable> handle = _manager.GetServableHandle<OnnxServable>(_latest);
        handle.Value.Run(_inputNames, _inputs, _outputNames, _outputs);
    }
}
