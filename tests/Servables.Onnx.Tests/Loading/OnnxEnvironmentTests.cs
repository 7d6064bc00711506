using Microsoft.ML.OnnxRuntime;
using Servables.Testing;

namespace Servables.Onnx.Tests.Loading;

public sealed class OnnxEnvironmentTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task DefaultOptions_SessionRunsOnTheSharedPools_ACountOrBatchingGivesItsOwn()
    {
        string path = Path.Combine(TestModels.WriteVersion(_folder.Path, 1, TestModels.Mlp()), "model.onnx");
        var shared = new OnnxLoader(new ServableId("mlp", 1), path);
        var own = new OnnxLoader(new ServableId("mlp", 2), path, new OnnxServableOptions { IntraOpThreads = 1 });
        var ownInterOp = new OnnxLoader(new ServableId("mlp", 3), path, new OnnxServableOptions { InterOpThreads = 1, ExecutionMode = ExecutionMode.ORT_PARALLEL });
        var batched = new OnnxLoader(new ServableId("mlp", 4), path, new OnnxServableOptions { Batching = new OnnxBatchingOptions() });
        await shared.LoadAsync();
        await own.LoadAsync();
        await ownInterOp.LoadAsync();
        await batched.LoadAsync();
        try
        {
            Assert.True(OnnxEnvironment.SharedThreadPools); // the test process made no environment of its own before a loader did
            Assert.True(OrtEnv.IsCreated);
            Assert.True(shared.Value!.SharedThreadPools);
            Assert.False(own.Value!.SharedThreadPools);
            Assert.False(ownInterOp.Value!.SharedThreadPools);
            Assert.False(batched.Value!.SharedThreadPools); // its batch workers are its only callers
        }
        finally
        {
            await batched.UnloadAsync();
            await shared.UnloadAsync();
            await own.UnloadAsync();
            await ownInterOp.UnloadAsync();
        }
    }

    [Fact]
    public async Task SharedPools_ConcurrentCallersOfTwoSessions_EachGetsTheReferenceResult()
    {
        // Two versions loaded at once, as during a hot swap, both on the process's pools.
        string path = Path.Combine(TestModels.WriteVersion(_folder.Path, 1, TestModels.Mlp()), "model.onnx");
        OnnxLoader[] loaders = [new(new ServableId("mlp", 1), path), new(new ServableId("mlp", 2), path)];
        foreach (OnnxLoader loader in loaders)
        {
            await loader.LoadAsync();
        }

        try
        {
            Task[] callers = [.. Enumerable.Range(0, 8).Select(c => Task.Run(() =>
            {
                OnnxServable servable = loaders[c % 2].Value!;
                Assert.True(servable.SharedThreadPools);
                for (int i = 0; i < 50; i++)
                {
                    float[] x = TestModels.Inputs(1, 8, seed: (c * 100) + i);
                    using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 8]);
                    using IDisposableReadOnlyCollection<OrtValue> y = servable.Run(new Dictionary<string, OrtValue> { ["X"] = input });
                    TestModels.AssertClose(TestModels.ExpectedMlp(x), y[0].GetTensorDataAsSpan<float>());
                }
            }))];
            await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            foreach (OnnxLoader loader in loaders)
            {
                await loader.UnloadAsync();
            }
        }
    }

    [Fact]
    public void ConfigureSharedThreadPools_AfterTheEnvironmentExists_ThrowsSayingWhenToCallIt()
    {
        _ = OnnxEnvironment.SharedThreadPools; // creates it, as the first load does

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => OnnxEnvironment.ConfigureSharedThreadPools(1));

        Assert.Contains("before the first ONNX model loads", ex.Message, StringComparison.Ordinal);
        Assert.True(OnnxEnvironment.SharedThreadPools); // nothing changed
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(1025, 0)]
    [InlineData(0, -1)]
    [InlineData(0, 1025)]
    public void ConfigureSharedThreadPools_CountOutOfRange_Throws(int intraOp, int interOp)
    {
        ArgumentOutOfRangeException ex = Assert.Throws<ArgumentOutOfRangeException>(() => OnnxEnvironment.ConfigureSharedThreadPools(intraOp, interOp));

        Assert.Equal(intraOp != 0 ? "intraOpThreads" : "interOpThreads", ex.ParamName);
    }
}
