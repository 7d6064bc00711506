using Microsoft.Extensions.Logging;
using Servables.Testing;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Servables.Torch.Tests.Loading;

public sealed class TorchLoaderTests : IDisposable
{
    private static readonly ServableId Id = new("mlp", 1);
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task LoadAsync_TorchScriptAffine_ForwardMatchesValuesComputedInCSharp()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 3, TestModels.AffineScript(3));
        var loader = new TorchLoader(new ServableId("affine", 3), Path.Combine(folder, "model.pt"));

        await loader.LoadAsync();

        TorchServable servable = loader.Value!;
        Assert.Equal(TorchDevice.Cpu, servable.Device);
        Assert.Equal(ScalarType.Float32, servable.ParameterType);
        float[] x = TestModels.Inputs(5, TestModels.AffineInputs);
        TestModels.AssertClose(TestModels.ExpectedAffine(3, x), TestModels.RunFloat(servable, x, TestModels.AffineInputs));
        await loader.UnloadAsync();
        Assert.True(servable.IsModuleReleased);
    }

    [Fact]
    public async Task LoadAsync_TorchScriptMlpOfTwoVersions_EachVersionComputesItsOwnWeights()
    {
        var loaders = new[] { 1L, 2L }.Select(v =>
            new TorchLoader(new ServableId("mlp", v), Path.Combine(TestModels.WriteVersion(_folder.Path, v, TestModels.MlpScript(v)), "model.pt"))).ToArray();
        foreach (TorchLoader loader in loaders)
        {
            await loader.LoadAsync();
        }

        float[] x = TestModels.Inputs(4, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(loaders[0].Value!, x, TestModels.MlpInputs));
        TestModels.AssertClose(TestModels.ExpectedMlp(2, x), TestModels.RunFloat(loaders[1].Value!, x, TestModels.MlpInputs));
        Assert.NotEqual(TestModels.ExpectedMlp(1, x), TestModels.ExpectedMlp(2, x));
        foreach (TorchLoader loader in loaders)
        {
            await loader.UnloadAsync();
        }
    }

    [Fact]
    public async Task LoadAsync_TorchScriptWithSubmodules_ComputesAndUnloadEmptiesEveryNestedTensor()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 4, TestModels.NestedMlpScript(4));
        var loader = new TorchLoader(new ServableId("nested", 4), Path.Combine(folder, "model.pt"));
        await loader.LoadAsync();
        TorchServable servable = loader.Value!;
        string[] names = [.. servable.Module.named_parameters().Select(p => p.name)];

        float[] x = TestModels.Inputs(3, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(4, x), TestModels.RunFloat(servable, x, TestModels.MlpInputs));
        await loader.UnloadAsync();

        Assert.Equal(["hidden.bias", "hidden.weight", "output.bias", "output.weight"], names.Order(StringComparer.Ordinal));
        Assert.True(servable.IsModuleReleased);
        Assert.Equal(4, servable.EmptiedScriptTensors);
    }

    [Theory]
    [InlineData(TorchModelKind.TorchSharpWeights)]
    [InlineData(TorchModelKind.PyTorchStateDict)]
    [InlineData(TorchModelKind.Safetensors)]
    public async Task LoadAsync_ModuleWithWeightsFile_LoadsTheFilesWeightsNotTheFactorysRandomOnes(TorchModelKind kind)
    {
        var options = new TorchServableOptions { ModelKind = kind, ModuleFactory = _ => TestModels.Mlp() };
        string path = WriteWeights(kind, version: 2, options.EffectiveModelFileName);
        var loader = new TorchLoader(new ServableId("mlp", 2), path, options);

        await loader.LoadAsync();

        float[] x = TestModels.Inputs(3, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(2, x), TestModels.RunFloat(loader.Value!, x, TestModels.MlpInputs));
        Assert.Equal(kind, loader.Value!.ModelKind);
        await loader.UnloadAsync();
    }

    [Theory]
    [InlineData(TorchModelKind.TorchSharpWeights)]
    [InlineData(TorchModelKind.PyTorchStateDict)]
    [InlineData(TorchModelKind.Safetensors)]
    public async Task LoadAsync_WeightsOfAnotherShape_FailsSayingTheyDoNotFitAndLeavesNothingLoaded(TorchModelKind kind)
    {
        // The file has an MLP of 8 inputs; the factory builds one of 6.
        var options = new TorchServableOptions { ModelKind = kind, ModuleFactory = _ => TestModels.Mlp(inputs: 6) };
        string path = WriteWeights(kind, version: 1, options.EffectiveModelFileName);
        var loader = new TorchLoader(Id, path, options);

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("do not fit the module", ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        if (kind != TorchModelKind.TorchSharpWeights)
        {
            // PyBridge formats are checked name by name before anything is copied.
            Assert.Contains("'hidden.weight' has shape [16, 8] in the file and [16, 6] in the module", ex.Message, StringComparison.Ordinal);
        }

        Assert.Null(loader.Value);
    }

    [Fact]
    public async Task LoadAsync_StateDictWithAMissingParameter_FailsNamingIt()
    {
        var options = new TorchServableOptions { ModelKind = TorchModelKind.Safetensors, ModuleFactory = _ => TestModels.Mlp() };
        string path = Path.Combine(_folder.Path, "model.safetensors");
        using (TestModels.MlpModule source = TestModels.Mlp(1))
        {
            Dictionary<string, Tensor> weights = source.state_dict();
            weights.Remove("output.bias");
            Safetensors.SaveStateDict(path, weights);
        }

        var loader = new TorchLoader(Id, path, options);

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("'output.bias' is missing", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(TorchModelKind.TorchScript)]
    [InlineData(TorchModelKind.TorchSharpWeights)]
    [InlineData(TorchModelKind.PyTorchStateDict)]
    [InlineData(TorchModelKind.Safetensors)]
    public async Task LoadAsync_CorruptFile_FailsWithTheReasonAndThePath(TorchModelKind kind)
    {
        var options = new TorchServableOptions { ModelKind = kind, ModuleFactory = kind == TorchModelKind.TorchScript ? null : _ => TestModels.Mlp() };
        string path = Path.Combine(_folder.Path, options.EffectiveModelFileName);
        File.WriteAllBytes(path, [.. Enumerable.Range(0, 300).Select(i => (byte)((i * 37) + 11))]);
        var loader = new TorchLoader(Id, path, options);

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.StartsWith($"Could not load {Id} ({kind}) from {path}: ", ex.Message, StringComparison.Ordinal);
        Assert.NotNull(ex.InnerException);
        Assert.DoesNotContain("frame #", ex.Message, StringComparison.Ordinal);
        Assert.Null(loader.Value);
    }

    [Fact]
    public async Task LoadAsync_TruncatedTorchScript_FailsWithLibtorchsReason()
    {
        byte[] model = TestModels.MlpScript(1);
        string folder = TestModels.WriteVersion(_folder.Path, 1, model[..(model.Length / 2)]);
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("zip archive", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_MissingFile_FailsListingWhatTheFolderHolds()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1), fileName: "other.pt");
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.IsType<FileNotFoundException>(ex.InnerException);
        Assert.Contains("holds other.pt", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ModelFileName", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_DTypeFloat64_ConvertsTheModuleAndComputesInDoublePrecision()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { DType = ScalarType.Float64 });
        await loader.LoadAsync();
        float[] x = TestModels.Inputs(2, TestModels.MlpInputs);

        using Tensor input = torch.tensor(x.Select(v => (double)v).ToArray(), [2, TestModels.MlpInputs]);
        using Tensor output = loader.Value!.Forward(input);

        Assert.Equal(ScalarType.Float64, loader.Value.ParameterType);
        Assert.Equal(ScalarType.Float64, output.dtype);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), output.data<double>().ToArray().Select(v => (float)v).ToArray());
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_CudaWithoutACudaRuntime_FailsNamingTheCudaPackage()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { Device = TorchDevice.Cuda });

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("TorchSharp-cuda-linux", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Auto", ex.Message, StringComparison.Ordinal);
        Assert.Null(loader.Value);
    }

    [Fact]
    public async Task LoadAsync_CudaDeviceTheProbeRejects_FailsWithTheProbesReasonAndTheDeviceIndex()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { Device = TorchDevice.Cuda, CudaDeviceIndex = 3 })
        {
            CudaProbe = index => (false, $"CUDA device {index} does not exist (this process sees 1)"),
        };

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("asks for device Cuda:3, but CUDA device 3 does not exist (this process sees 1)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_AutoWithoutACudaRuntime_RunsOnCpuAndLogsTheFallback()
    {
        using var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { Device = TorchDevice.Auto }, factory);

        await loader.LoadAsync();

        Assert.Equal(TorchDevice.Cpu, loader.Value!.Device);
        Assert.Contains(logs.Entries, e => e.EventId.Id == 402 && e.Message.Contains("mlp:1", StringComparison.Ordinal));
        await loader.UnloadAsync();
    }

    [Fact]
    public async Task LoadAsync_WarmupTheModuleRefuses_FailsTheLoadAndDisposesTheModule()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var options = new TorchServableOptions();
        options.WarmupRequests.Add([TorchWarmupTensor.Zeros(ScalarType.Float32, 2, 5)]); // 5 features, not 8
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), options);

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.Contains("Warm-up request 0 (Float32[2, 5])", ex.Message, StringComparison.Ordinal);
        Assert.IsType<TorchInputException>(ex.InnerException);
        Assert.Null(loader.Value);
    }

    [Fact]
    public async Task LoadAsync_WarmupThatFits_RunsEveryIteration()
    {
        using var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var options = new TorchServableOptions { WarmupIterations = 3 };
        options.WarmupRequests.Add([TorchWarmupTensor.FromFloats(TestModels.Inputs(1, 8), 1, 8)]);
        options.WarmupRequests.Add([TorchWarmupTensor.Zeros(ScalarType.Float32, 4, 8)]);
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), options, factory);

        await loader.LoadAsync();

        Assert.Contains(logs.Entries, e => e.EventId.Id == 403 && e.Message.Contains("ran 6 request(s)", StringComparison.Ordinal));
        await loader.UnloadAsync();
    }

    [Fact]
    public void EstimateResources_CpuFromFileSize_IsTheFileSizeTimesTheFactorInRam()
    {
        byte[] model = TestModels.MlpScript(1);
        string folder = TestModels.WriteVersion(_folder.Path, 1, model);
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { ResourceEstimateFactor = 3 });

        Assert.Equal(ResourceAllocation.Ram(model.Length * 3L), loader.EstimateResources());
    }

    [Fact]
    public async Task EstimateResources_AutoAfterLoadingOnCpu_NarrowsToRamAndNeverGrows()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(Id, Path.Combine(folder, "model.pt"), new TorchServableOptions { Device = TorchDevice.Auto });
        ResourceAllocation before = loader.EstimateResources();
        Assert.True(before[Resource.GpuMemory(0)] > 0);

        await loader.LoadAsync();
        ResourceAllocation after = loader.EstimateResources();

        Assert.Equal(0, after[Resource.GpuMemory(0)]);
        Assert.Equal(before[Resource.Ram], after[Resource.Ram]);
        Assert.True(after.FitsWithin(before));
        await loader.UnloadAsync();
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsListingEveryProblem()
    {
        var options = new TorchServableOptions { ModelKind = TorchModelKind.Safetensors, CudaDeviceIndex = -1, ModelFileName = "../x.pt" };

        ArgumentException ex = Assert.Throws<ArgumentException>(() => new TorchLoader(Id, "/m/1/model.pt", options));

        Assert.Contains("ModuleFactory is required for Safetensors", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CudaDeviceIndex", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ModelFileName", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_FactoryWithTorchScript_IsAnError()
    {
        var options = new TorchServableOptions { ModuleFactory = _ => TestModels.Mlp() };

        Assert.Contains(options.Validate(), e => e.Contains("must be null for TorchScript", StringComparison.Ordinal));
    }

    /// <summary>Saves version <paramref name="version"/>'s MLP in <paramref name="kind"/>'s format, as each tool writes it.</summary>
    private string WriteWeights(TorchModelKind kind, long version, string fileName)
    {
        string path = Path.Combine(_folder.Path, fileName);
        using TestModels.MlpModule source = TestModels.Mlp(version);
        switch (kind)
        {
            case TorchModelKind.TorchSharpWeights:
                source.save(path);
                break;
            case TorchModelKind.PyTorchStateDict:
                source.save_py(path);
                break;
            case TorchModelKind.Safetensors:
                source.save_safetensors(path);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }

        return path;
    }
}
