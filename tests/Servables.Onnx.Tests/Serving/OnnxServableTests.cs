using Servables.Testing;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Servables.Onnx.Tests.Serving;

public sealed class OnnxServableTests : IAsyncLifetime
{
    private readonly TempFolder _folder = new();
    private OnnxLoader _linear = null!;
    private OnnxLoader _mlp = null!;

    private OnnxServable Linear => _linear.Value!;

    private OnnxServable Mlp => _mlp.Value!;

    public async Task InitializeAsync()
    {
        string linearPath = _folder.Combine("linear.onnx");
        File.WriteAllBytes(linearPath, TestModels.Linear(1));
        string mlpPath = _folder.Combine("mlp.onnx");
        File.WriteAllBytes(mlpPath, TestModels.Mlp());
        var options = new OnnxServableOptions { IntraOpThreads = 1 };
        _linear = new OnnxLoader(new ServableId("linear", 1), linearPath, options);
        _mlp = new OnnxLoader(new ServableId("mlp", 1), mlpPath, options);
        await _linear.LoadAsync();
        await _mlp.LoadAsync();
    }

    public async Task DisposeAsync()
    {
        await _linear.UnloadAsync();
        await _mlp.UnloadAsync();
        _folder.Dispose();
    }

    [Fact]
    public void Inputs_LinearModel_ReportNamesElementTypesAndSymbolicBatchDimension()
    {
        OnnxTensorInfo input = Assert.Single(Linear.Inputs);
        Assert.Equal("X", input.Name);
        Assert.True(input.IsTensor);
        Assert.Equal(TensorElementType.Float, input.ElementType);
        Assert.Equal([-1L, 4L], input.Dimensions);
        Assert.Equal(["batch", string.Empty], input.SymbolicDimensions);
        OnnxTensorInfo output = Assert.Single(Linear.Outputs);
        Assert.Equal("Y", output.Name);
        Assert.Equal([-1L, 2L], output.Dimensions);
        Assert.Equal("(X: float[batch, 4]) -> (Y: float[batch, 2])", Linear.Signature);
        Assert.Equal(OnnxExecutionProvider.Cpu, Linear.ExecutionProvider);
        Assert.Equal(new ServableId("linear", 1), Linear.Id);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void Run_LinearModel_MatchesValuesComputedInCSharp(int batch)
    {
        float[] x = TestModels.Inputs(batch, TestModels.LinearInputs);
        float[] y = TestModels.RunFloat(Linear, x, TestModels.LinearInputs);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), y);
    }

    [Fact]
    public void Run_MlpIntoPreallocatedOutputs_MatchesValuesComputedInCSharp()
    {
        const int batch = 5;
        float[] x = TestModels.Inputs(batch, 8, seed: 7);
        float[] expected = TestModels.ExpectedMlp(x);
        Assert.Contains(TestModels.Affine(x, TestModels.MlpWeights().W1, TestModels.MlpWeights().B1, relu: false), v => v < 0); // Relu matters
        var y = new float[batch * 3];
        using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [batch, 8]);
        using OrtValue output = OrtValue.CreateTensorValueFromMemory(y, [batch, 3]);

        Mlp.Run(["X"], [input], ["Y"], [output]);

        TestModels.AssertClose(expected, y); // written in place, into the caller's array
    }

    [Fact]
    public void Run_OutputNamesGiven_ReturnsThoseOutputs()
    {
        float[] x = TestModels.Inputs(2, TestModels.LinearInputs);
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(x, [2, TestModels.LinearInputs]);
        using IDisposableReadOnlyCollection<OrtValue> outputs = Linear.Run(new Dictionary<string, OrtValue> { ["X"] = value }, ["Y"]);
        OrtValue y = Assert.Single(outputs);
        Assert.Equal([2L, 2L], y.GetTensorTypeAndShape().Shape);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), y.GetTensorDataAsSpan<float>());
    }

    [Fact]
    public void Run_WrongInputName_ThrowsNamingExpectedSignature_SessionStaysUsable()
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(new float[4], [1, 4]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue> { ["input"] = value }));
        Assert.Contains("'input' is not an input of the model", ex.Message, StringComparison.Ordinal);
        AssertNamesSignature(ex);
        Assert.IsType<OnnxRuntimeException>(ex.InnerException);
        AssertStillUsable();
    }

    [Fact]
    public void Run_WrongElementType_ThrowsNamingExpectedSignature_SessionStaysUsable()
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(new int[4], [1, 4]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue> { ["X"] = value }));
        Assert.Contains("element type int32", ex.Message, StringComparison.Ordinal);
        AssertNamesSignature(ex);
        AssertStillUsable();
    }

    [Fact]
    public void Run_WrongRank_ThrowsNamingExpectedSignature_SessionStaysUsable()
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(new float[8], [1, 2, 4]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue> { ["X"] = value }));
        Assert.Contains("rank 3", ex.Message, StringComparison.Ordinal);
        AssertNamesSignature(ex);
        AssertStillUsable();
    }

    [Fact]
    public void Run_WrongFixedDimension_ThrowsNamingExpectedSignature_SessionStaysUsable()
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(new float[6], [2, 3]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue> { ["X"] = value }));
        Assert.Contains("shape float[2, 3]", ex.Message, StringComparison.Ordinal);
        AssertNamesSignature(ex);
        AssertStillUsable();
    }

    [Fact]
    public void Run_MissingInput_ThrowsNamingIt()
    {
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue>()));
        Assert.Contains("input 'X' is missing", ex.Message, StringComparison.Ordinal);
        AssertStillUsable();
    }

    [Fact]
    public void Run_UnknownOutputName_ThrowsNamingTheOutputs()
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(new float[4], [1, 4]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(new Dictionary<string, OrtValue> { ["X"] = value }, ["Z"]));
        Assert.Contains("'Z' is not an output of the model", ex.Message, StringComparison.Ordinal);
        AssertStillUsable();
    }

    [Fact]
    public void Run_PreallocatedOutputOfWrongShape_ThrowsNamingIt()
    {
        using OrtValue input = OrtValue.CreateTensorValueFromMemory(new float[4], [1, 4]);
        using OrtValue output = OrtValue.CreateTensorValueFromMemory(new float[3], [1, 3]);
        OnnxInputException ex = Assert.Throws<OnnxInputException>(() => Linear.Run(["X"], [input], ["Y"], [output]));
        Assert.Contains("output buffer 'Y' has shape float[1, 3]", ex.Message, StringComparison.Ordinal);
        AssertStillUsable();
    }

    [Fact]
    public async Task Run_ConcurrentCallsOnOneSession_EveryResultCorrect()
    {
        Task[] callers = [.. Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < 200; i++)
            {
                int batch = 1 + ((t + i) % 5);
                float[] x = TestModels.Inputs(batch, 8, seed: (t * 1000) + i);
                var y = new float[batch * 3];
                using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [batch, 8]);
                using OrtValue output = OrtValue.CreateTensorValueFromMemory(y, [batch, 3]);
                Mlp.Run(["X"], [input], ["Y"], [output]);
                TestModels.AssertClose(TestModels.ExpectedMlp(x), y);
            }
        }))];
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Run_AfterDispose_ThrowsObjectDisposed()
    {
        string path = _folder.Combine("own.onnx");
        File.WriteAllBytes(path, TestModels.Linear(3));
        var loader = new OnnxLoader(new ServableId("own", 3), path);
        await loader.LoadAsync();
        OnnxServable servable = loader.Value!;

        servable.Dispose();
        servable.Dispose(); // idempotent

        Assert.True(servable.IsSessionReleased);
        Assert.Throws<ObjectDisposedException>(() => TestModels.RunFloat(servable, new float[4], 4));
    }

    [Fact]
    public async Task Dispose_WithRunsInFlight_DefersTheReleaseUntilTheLastReturns()
    {
        string path = _folder.Combine("deferred.onnx");
        File.WriteAllBytes(path, TestModels.Linear(1));
        var loader = new OnnxLoader(new ServableId("deferred", 1), path);
        await loader.LoadAsync();
        OnnxServable servable = loader.Value!;
        servable.EnterRun();
        servable.EnterRun();

        servable.Dispose();

        Assert.True(servable.IsDisposed);
        Assert.False(servable.IsSessionReleased);
        Assert.Throws<ObjectDisposedException>(() => TestModels.RunFloat(servable, new float[4], 4));
        servable.ExitRun();
        Assert.False(servable.IsSessionReleased);
        servable.ExitRun();
        Assert.True(servable.IsSessionReleased);
    }

    [Fact]
    public async Task Dispose_WhileRunsAreInFlight_SessionReleasedOnlyAfterTheLastRunReturns()
    {
        string path = _folder.Combine("busy.onnx");
        File.WriteAllBytes(path, TestModels.Mlp());
        var loader = new OnnxLoader(new ServableId("busy", 1), path, new OnnxServableOptions { IntraOpThreads = 1 });
        await loader.LoadAsync();
        OnnxServable servable = loader.Value!;
        int completed = 0, otherFailures = 0;
        using var started = new CountdownEvent(2);
        Task[] callers = [.. Enumerable.Range(0, 2).Select(t => Task.Run(() =>
        {
            float[] x = TestModels.Inputs(32, 8, seed: t);
            float[] expected = TestModels.ExpectedMlp(x);
            var y = new float[32 * 3];
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [32, 8]);
            using OrtValue output = OrtValue.CreateTensorValueFromMemory(y, [32, 3]);
            bool signalled = false;
            while (true)
            {
                try
                {
                    servable.Run(["X"], [input], ["Y"], [output]);
                    TestModels.AssertClose(expected, y);
                    Interlocked.Increment(ref completed);
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
#pragma warning disable CA1031 // Counted and asserted below.
                catch (Exception)
#pragma warning restore CA1031
                {
                    Interlocked.Increment(ref otherFailures);
                    return;
                }

                if (!signalled)
                {
                    started.Signal();
                    signalled = true;
                }
            }
        }))];
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)));

        servable.Dispose();
        Assert.True(servable.IsDisposed);
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, otherFailures);
        Assert.True(completed >= 2);
        Assert.True(servable.IsSessionReleased);
    }

    private void AssertNamesSignature(OnnxInputException ex)
    {
        Assert.Equal(Linear.Signature, ex.Signature);
        Assert.Contains("(X: float[batch, 4]) -> (Y: float[batch, 2])", ex.Message, StringComparison.Ordinal);
        Assert.Contains("linear:1", ex.Message, StringComparison.Ordinal);
        Assert.Equal(new ServableId("linear", 1), ex.Id);
    }

    private void AssertStillUsable()
    {
        float[] x = TestModels.Inputs(3, TestModels.LinearInputs, seed: 9);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), TestModels.RunFloat(Linear, x, TestModels.LinearInputs));
    }
}
