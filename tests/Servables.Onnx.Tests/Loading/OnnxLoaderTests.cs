using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Servables.Testing;

namespace Servables.Onnx.Tests.Loading;

public sealed class OnnxLoaderTests : IDisposable
{
    private static readonly ServableId Id = new("model", 1);
    private readonly TempFolder _folder = new();
    private readonly CapturingLoggerProvider _logs = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task LoadAsync_ValidModel_ServesOnCpuAndUnloadDisposesTheSession()
    {
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)));

        await loader.LoadAsync();
        OnnxServable servable = Assert.IsType<OnnxServable>(loader.Servable);
        Assert.Equal(OnnxExecutionProvider.Cpu, servable.ExecutionProvider);
        float[] x = TestModels.Inputs(2, 4);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), TestModels.RunFloat(servable, x, 4));

        await loader.UnloadAsync();
        Assert.Null(loader.Servable);
        Assert.True(servable.IsSessionReleased);
    }

    [Fact]
    public async Task LoadAsync_CorruptFile_ThrowsWithOnnxRuntimeMessage()
    {
        byte[] garbage = [.. Enumerable.Range(0, 300).Select(i => (byte)((i * 37) + 11))];
        var loader = new OnnxLoader(Id, Write("model.onnx", garbage));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        AssertCarriesOnnxRuntimeMessage(ex);
        Assert.Contains("model:1", ex.Message, StringComparison.Ordinal);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public async Task LoadAsync_TruncatedFile_ThrowsWithOnnxRuntimeMessage()
    {
        byte[] model = TestModels.Mlp();
        var loader = new OnnxLoader(Id, Write("model.onnx", model[..(model.Length / 2)]));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        AssertCarriesOnnxRuntimeMessage(ex);
    }

    [Fact]
    public async Task LoadAsync_MissingFile_ThrowsWithOnnxRuntimeMessageAndListsTheFolder()
    {
        Write("other.onnx", TestModels.Linear(1));
        var loader = new OnnxLoader(Id, _folder.Combine("model.onnx"));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        AssertCarriesOnnxRuntimeMessage(ex);
        Assert.Contains("holds other.onnx", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ModelFileName", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_CudaWithoutCudaProvider_FailsNamingTheGpuPackage()
    {
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), new OnnxServableOptions { ExecutionProvider = OnnxExecutionProvider.Cuda });
        _ = OnnxEnvironment.SharedThreadPools; // the environment made as a loader makes it, before it is read directly
        Assert.DoesNotContain(OnnxLoader.CudaProviderName, OrtEnv.Instance().GetAvailableProviders()); // this machine's CPU package

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("add the package Microsoft.ML.OnnxRuntime.Gpu to the app, in place of Microsoft.ML.OnnxRuntime", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ServablesGpu", ex.Message, StringComparison.Ordinal); // a consumer cannot rebuild Servables
        Assert.Contains("model:1", ex.Message, StringComparison.Ordinal);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public async Task LoadAsync_NoNativeRuntime_FailsNamingBothNativePackages()
    {
        var missing = new DllNotFoundException("Unable to load shared library 'onnxruntime' or one of its dependencies.");
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1))) { NativeProbe = () => missing };

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Same(missing, ex.InnerException);
        Assert.Contains("Unable to load shared library 'onnxruntime'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Microsoft.ML.OnnxRuntime for the CPU or Microsoft.ML.OnnxRuntime.Gpu for CUDA", ex.Message, StringComparison.Ordinal);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public async Task LoadAsync_AutoWithoutCudaProvider_RunsOnCpuAndLogsTheFallback()
    {
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), new OnnxServableOptions { ExecutionProvider = OnnxExecutionProvider.Auto }, _logs);

        await loader.LoadAsync();

        Assert.Equal(OnnxExecutionProvider.Cpu, loader.Value!.ExecutionProvider);
        CapturingLoggerProvider.LogEntry fallback = Assert.Single(_logs.Entries, e => e.EventId.Id == 302);
        Assert.Equal(LogLevel.Warning, fallback.Level);
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", fallback.Message, StringComparison.Ordinal);
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_CudaProviderListedButNotStartable_FailsWithOnnxRuntimeMessage()
    {
        // Pretends the runtime is the GPU build: the CPU build then refuses to start CUDA, as a GPU
        // build does on a machine without CUDA libraries or device.
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), new OnnxServableOptions { ExecutionProvider = OnnxExecutionProvider.Cuda, CudaDeviceId = 1 })
        {
            AvailableProviders = () => [OnnxLoader.CudaProviderName, "CPUExecutionProvider"],
        };

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("could not start the CUDA execution provider on device 1", ex.Message, StringComparison.Ordinal);
        Assert.Contains(ex.InnerException!.Message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_AutoWithCudaProviderNotStartable_FallsBackToCpu()
    {
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), new OnnxServableOptions { ExecutionProvider = OnnxExecutionProvider.Auto }, _logs)
        {
            AvailableProviders = () => [OnnxLoader.CudaProviderName, "CPUExecutionProvider"],
        };
        long bytes = new FileInfo(loader.ModelPath).Length * 2;
        Assert.Equal(ResourceAllocation.Ram(bytes).Add(ResourceAllocation.GpuMemory(bytes)), loader.EstimateResources());

        await loader.LoadAsync();

        Assert.Equal(OnnxExecutionProvider.Cpu, loader.Value!.ExecutionProvider);
        Assert.Contains(_logs.Entries, e => e.EventId.Id == 302 && e.Message.Contains("CUDA", StringComparison.Ordinal));
        Assert.Equal(ResourceAllocation.Ram(bytes), loader.EstimateResources()); // narrowed to what the load chose
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_WarmupRequests_RunBeforeTheLoadReturns()
    {
        var options = new OnnxServableOptions { WarmupIterations = 3 };
        options.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor> { ["X"] = OnnxWarmupTensor.Create(TestModels.Inputs(2, 4), 2, 4) });
        options.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor> { ["X"] = OnnxWarmupTensor.Zeros(TensorElementType.Float, 1, 4) });
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), options, _logs);

        await loader.LoadAsync();

        CapturingLoggerProvider.LogEntry warmup = Assert.Single(_logs.Entries, e => e.EventId.Id == 303);
        Assert.Contains("ran 6 request(s)", warmup.Message, StringComparison.Ordinal);
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_WarmupThatDoesNotMatchTheModel_FailsWithOnnxRuntimeMessageAndDisposesTheSession()
    {
        var options = new OnnxServableOptions();
        options.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor> { ["X"] = OnnxWarmupTensor.Zeros(TensorElementType.Float, 1, 5) });
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Linear(1)), options);

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("Warm-up request 0 of model:1 (X: float[1, 5])", ex.Message, StringComparison.Ordinal);
        Assert.Contains("(X: float[batch, 4]) -> (Y: float[batch, 2])", ex.Message, StringComparison.Ordinal);
        AssertCarriesOnnxRuntimeMessage(ex);
        Assert.Null(loader.Servable);
    }

    [Fact]
    public void EstimateResources_Cpu_IsFileSizeTimesFactorInRam()
    {
        string path = Write("model.onnx", TestModels.Mlp());
        long size = new FileInfo(path).Length;

        Assert.Equal(ResourceAllocation.Ram(size * 2), new OnnxLoader(Id, path).EstimateResources());
        Assert.Equal(ResourceAllocation.Ram((long)Math.Ceiling(size * 3.5)), new OnnxLoader(Id, path, new OnnxServableOptions { ResourceEstimateFactor = 3.5 }).EstimateResources());
    }

    [Fact]
    public void EstimateResources_Cuda_IsFileSizeTimesFactorOnTheDevice()
    {
        string path = Write("model.onnx", TestModels.Mlp());
        long size = new FileInfo(path).Length;
        var loader = new OnnxLoader(Id, path, new OnnxServableOptions { ExecutionProvider = OnnxExecutionProvider.Cuda, CudaDeviceId = 2 });

        Assert.Equal(ResourceAllocation.GpuMemory(size * 2, device: 2), loader.EstimateResources());
    }

    [Fact]
    public async Task EstimateResources_FixedEstimate_WinsAndNeverChanges()
    {
        ResourceAllocation fixedEstimate = ResourceAllocation.Ram(123_456);
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Mlp()), new OnnxServableOptions { ResourceEstimate = fixedEstimate });

        Assert.Equal(fixedEstimate, loader.EstimateResources());
        await loader.LoadAsync();
        Assert.Equal(fixedEstimate, loader.EstimateResources());
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_Cancelled_ThrowsAndLeavesNothing()
    {
        var loader = new OnnxLoader(Id, Write("model.onnx", TestModels.Mlp()));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loader.LoadAsync(cts.Token));
        Assert.Null(loader.Servable);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsListingEveryProblem()
    {
        var options = new OnnxServableOptions
        {
            ModelFileName = "../model.onnx",
            CudaDeviceId = -1,
            IntraOpThreads = -2,
            WarmupIterations = 0,
            ResourceEstimateFactor = 0,
            ExecutionProvider = (OnnxExecutionProvider)9,
        };

        Assert.Equal(6, options.Validate().Count);
        ArgumentException ex = Assert.Throws<ArgumentException>(() => new OnnxLoader(Id, "model.onnx", options));
        Assert.Contains("ModelFileName", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ResourceEstimateFactor", ex.Message, StringComparison.Ordinal);
        Assert.Empty(new OnnxServableOptions().Validate());
    }

    [Fact]
    public void WarmupTensor_ShapeThatDoesNotMatchTheData_Throws()
    {
        Assert.Throws<ArgumentException>(() => OnnxWarmupTensor.Create(new float[3], 1, 4));
        Assert.Throws<ArgumentException>(() => OnnxWarmupTensor.Zeros(TensorElementType.String, 1));
        Assert.Throws<ArgumentException>(() => OnnxWarmupTensor.Zeros(TensorElementType.Float, -1, 4));
        Assert.Equal("int64[2, 1]", OnnxWarmupTensor.Create(new long[2], 2, 1).ToString());
    }

    private static void AssertCarriesOnnxRuntimeMessage(Exception ex)
    {
        OnnxRuntimeException? ort = null;
        for (Exception? e = ex; e is not null && ort is null; e = e.InnerException)
        {
            ort = e as OnnxRuntimeException;
        }

        Assert.NotNull(ort);
        Assert.Contains(ort.Message, ex.Message, StringComparison.Ordinal);
    }

    private string Write(string fileName, byte[] bytes)
    {
        string path = _folder.Combine(fileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
