using BenchmarkDotNet.Attributes;
using Servables.Benchmarks.Onnx;
using Servables.Testing.Torch;
using Servables.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Benchmarks.Torch;

/// <summary>
/// One forward of a small TorchScript MLP (64 → 128 Relu → 16) through a servable handle and
/// <see cref="TorchServable.Forward(Tensor, bool)"/>, against raw <c>ScriptModule.forward</c> under
/// <c>torch.no_grad()</c> on the very same module (one intra-op thread). Both read the same input and
/// dispose their output.
/// </summary>
[MemoryDiagnoser]
public class TorchForwardBenchmarks
{
    private const int Inputs = 64;
    private const int Hidden = 128;
    private const int Outputs = 16;

    private readonly ServableRequest _latest = ServableRequest.Latest("mlp");
    private string _folder = null!;
    private jit.ScriptModule _module = null!;
    private Tensor _input = null!;
    private AspiredVersionsManager _manager = null!;

    /// <summary>Rows per forward; 1 outside BenchmarkDotNet (--side-by-side).</summary>
    [Params(1, 32)]
    public int Batch { get; set; } = 1;

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.SetThreads(1);
        _folder = Path.Combine(Path.GetTempPath(), $"servables-bench-torch-{Guid.NewGuid():N}");
        string modelPath = Path.Combine(_folder, "1", "model.pt");
        Directory.CreateDirectory(Path.GetDirectoryName(modelPath)!);
        var random = new Random(7);
        float[,] w1 = RandomWeights.Matrix(random, Inputs, Hidden), w2 = RandomWeights.Matrix(random, Hidden, Outputs);
        File.WriteAllBytes(modelPath, TorchScriptWriter.Mlp(w1, RandomWeights.Vector(random, Hidden), w2, RandomWeights.Vector(random, Outputs)));
        _input = torch.tensor(RandomWeights.Vector(random, Batch * Inputs), [Batch, Inputs]);

        _manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        var id = new ServableId("mlp", 1);
        _manager.SetAspiredVersions("mlp", [ServableData.Create<Loader>(id, new TorchLoader(id, modelPath))]);
        for (int i = 0; i < 5 && _manager.ListAvailableServableIds().Count == 0; i++)
        {
            _manager.ManageStateAsync().GetAwaiter().GetResult();
        }

        // The baseline runs the very module the servable wraps.
        using ServableHandle<TorchServable> handle = _manager.GetServableHandle<TorchServable>(_latest); // throws, with the reason, if the version did not load
        _module = (jit.ScriptModule)handle.Value.Module;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _manager.DisposeAsync().AsTask().GetAwaiter().GetResult(); // disposes the servable and its module
        _input.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public void RawModuleForward()
    {
        using (torch.no_grad())
        using (var output = (Tensor)_module.forward(_input))
        {
        }
    }

    [Benchmark]
    public void HandleAndServableForward()
    {
        using ServableHandle<TorchServable> handle = _manager.GetServableHandle<TorchServable>(_latest);
        using Tensor output = handle.Value.Forward(_input);
    }
}
