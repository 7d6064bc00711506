using Servables.Testing;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Servables.Testing.Onnx;

namespace Servables.Onnx.Tests.Sources;

public sealed class OnnxSourceAdapterTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public enum BadVersion
    {
        CorruptFile,
        TruncatedFile,
        MissingFile,
        WrongFileName,
        WarmupDoesNotMatchInputs,
    }

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData(BadVersion.CorruptFile)]
    [InlineData(BadVersion.TruncatedFile)]
    [InlineData(BadVersion.MissingFile)]
    [InlineData(BadVersion.WrongFileName)]
    [InlineData(BadVersion.WarmupDoesNotMatchInputs)]
    public async Task NewVersionThatCannotLoad_GoesToErrorWithOnnxRuntimeMessage_ServingVersionStays(BadVersion bad)
    {
        string basePath = _folder.Combine("linear");
        TestModels.WriteVersion(basePath, 1, TestModels.Linear(1));
        var options = new OnnxServableOptions { IntraOpThreads = 1 };
        options.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor> { ["X"] = OnnxWarmupTensor.Zeros(TensorElementType.Float, 1, 4) });
        await using var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan, MaxLoadRetries = 0 });
        using var monitor = new ServableStateMonitor(manager);
        await using var source = new FileSystemStoragePathSource(new FileSystemStoragePathSourceOptions
        {
            PollPeriod = Timeout.InfiniteTimeSpan,
            Servables = { new StoragePathServable("linear", basePath) },
        });
        var adapter = new OnnxSourceAdapter(options);
        AspiredVersions.ConnectSourceToTarget(adapter, manager);
        AspiredVersions.ConnectSourceToTarget(source, adapter);
        await source.PollAsync();
        await SettleAsync(manager);
        Assert.Equal(ServableManagerState.Available, monitor.GetState(new ServableId("linear", 1))?.State);

        byte[] v2 = TestModels.Linear(2);
        switch (bad)
        {
            case BadVersion.CorruptFile:
                TestModels.WriteVersion(basePath, 2, [.. Enumerable.Range(0, 256).Select(i => (byte)(255 - i))]);
                break;
            case BadVersion.TruncatedFile:
                TestModels.WriteVersion(basePath, 2, v2[..(v2.Length - 20)]);
                break;
            case BadVersion.MissingFile:
                Directory.CreateDirectory(Path.Combine(basePath, "2"));
                break;
            case BadVersion.WrongFileName:
                TestModels.WriteVersion(basePath, 2, v2, fileName: "linear.onnx");
                break;
            case BadVersion.WarmupDoesNotMatchInputs:
                TestModels.WriteVersion(basePath, 2, OnnxModelWriter.Linear(new float[5, 2], [1, 2]).ToArray());
                break;
        }

        await source.PollAsync();
        await SettleAsync(manager);

        ServableState? failed = monitor.GetState(new ServableId("linear", 2));
        Assert.NotNull(failed);
        Assert.True(failed.IsError, $"Expected an error, got {failed}.");
        OnnxRuntimeException ort = FindOnnxRuntimeException(failed.Error!);
        Assert.Contains(ort.Message, failed.Error!.Message, StringComparison.Ordinal);
        if (bad == BadVersion.WrongFileName)
        {
            Assert.Contains("holds linear.onnx", failed.Error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(ServableManagerState.Available, monitor.GetState(new ServableId("linear", 1))?.State);
        using ServableHandle<OnnxServable> handle = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("linear"));
        Assert.Equal(1, handle.Id.Version);
        float[] x = TestModels.Inputs(3, 4);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), TestModels.RunFloat(handle.Value, x, 4));
    }

    [Fact]
    public void Convert_VersionFolder_CreatesLoaderForTheConfiguredFileName()
    {
        var adapter = new OnnxSourceAdapter(new OnnxServableOptions { ModelFileName = "net.onnx" });
        var target = new CapturingTarget();
        AspiredVersions.ConnectSourceToTarget(adapter, target);

        adapter.SetAspiredVersions("net", [ServableData.Create(new ServableId("net", 4), _folder.Combine("net", "4"))]);

        ServableData<Loader> data = Assert.Single(target.Versions);
        OnnxLoader loader = Assert.IsType<OnnxLoader>(data.Value);
        Assert.Equal(_folder.Combine("net", "4", "net.onnx"), loader.ModelPath);
        Assert.Equal(new ServableId("net", 4), loader.Id);
    }

    [Fact]
    public void Constructor_InvalidOptions_Throws() =>
        Assert.Throws<ArgumentException>(() => new OnnxSourceAdapter(new OnnxServableOptions { ModelFileName = "a/b.onnx" }));

    private static OnnxRuntimeException FindOnnxRuntimeException(Exception error)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            if (e is OnnxRuntimeException ort)
            {
                return ort;
            }
        }

        throw new Xunit.Sdk.XunitException($"No OnnxRuntimeException in {error}");
    }

    private static async Task SettleAsync(AspiredVersionsManager manager)
    {
        for (int i = 0; i < 6; i++)
        {
            await manager.ManageStateAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private sealed class CapturingTarget : IAspiredVersionsTarget<Loader>
    {
        public IReadOnlyList<ServableData<Loader>> Versions { get; private set; } = [];

        public void SetAspiredVersions(string servableName, IReadOnlyList<ServableData<Loader>> versions) => Versions = versions;
    }
}
