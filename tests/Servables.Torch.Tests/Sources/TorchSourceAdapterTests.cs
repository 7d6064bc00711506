using Servables.Testing;
namespace Servables.Torch.Tests.Sources;

public sealed class TorchSourceAdapterTests
{
    [Theory]
    [InlineData(TorchModelKind.TorchScript, "model.pt")]
    [InlineData(TorchModelKind.TorchSharpWeights, "model.dat")]
    [InlineData(TorchModelKind.PyTorchStateDict, "model.pth")]
    [InlineData(TorchModelKind.Safetensors, "model.safetensors")]
    public void CreateLoader_DefaultFileName_IsTheKindsFileInsideTheVersionFolder(TorchModelKind kind, string fileName)
    {
        var options = new TorchServableOptions { ModelKind = kind, ModuleFactory = kind == TorchModelKind.TorchScript ? null : _ => TestModels.Mlp() };

        TorchLoader loader = TorchSourceAdapter.CreateLoader(new ServableId("m", 4), "/models/m/4", options, null, TorchMetrics.Default);

        Assert.Equal(Path.GetFullPath(Path.Combine("/models/m/4", fileName)), loader.ModelPath);
        Assert.Equal(new ServableId("m", 4), loader.Id);
    }

    [Fact]
    public void Constructor_InvalidOptions_Throws()
    {
        Assert.Throws<ArgumentException>(() => new TorchSourceAdapter(new TorchServableOptions { WarmupIterations = 0 }));
    }

    [Fact]
    public async Task Adapter_BetweenASourceAndAManager_TheVersionFolderLoadsAndServes()
    {
        using var folder = new TempFolder();
        string versionPath = TestModels.WriteVersion(folder.Path, 3, TestModels.AffineScript(3));
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        var adapter = new TorchSourceAdapter();
        AspiredVersions.ConnectSourceToTarget(adapter, manager);

        adapter.SetAspiredVersions("affine", [ServableData.Create(new ServableId("affine", 3), versionPath)]);
        await manager.ManageStateAsync().WaitAsync(TimeSpan.FromSeconds(30));

        using ServableHandle<TorchServable> handle = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("affine"));
        float[] x = TestModels.Inputs(2, TestModels.AffineInputs);
        TestModels.AssertClose(TestModels.ExpectedAffine(3, x), TestModels.RunFloat(handle.Value, x, TestModels.AffineInputs));
    }
}
