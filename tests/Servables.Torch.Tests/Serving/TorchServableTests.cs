using Servables.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch.Tests.Serving;

public sealed class TorchServableTests : IAsyncLifetime, IDisposable
{
    private readonly TempFolder _folder = new();
    private TorchLoader _script = null!;
    private TorchLoader _module = null!;

    public async Task InitializeAsync()
    {
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        _script = new TorchLoader(new ServableId("script", 1), Path.Combine(folder, "model.pt"));
        await _script.LoadAsync();
        string weights = Path.Combine(_folder.Path, "model.dat");
        using (TestModels.MlpModule source = TestModels.Mlp(1))
        {
            source.save(weights);
        }

        _module = new TorchLoader(new ServableId("module", 1), weights, new TorchServableOptions { ModelKind = TorchModelKind.TorchSharpWeights, ModuleFactory = _ => TestModels.Mlp() });
        await _module.LoadAsync();
    }

    public async Task DisposeAsync()
    {
        await _script.UnloadAsync();
        await _module.UnloadAsync();
    }

    public void Dispose() => _folder.Dispose();

    public static TheoryData<string> Kinds => new() { "script", "module" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Forward_WrongFeatureCount_ThrowsTorchInputExceptionNamingTheShapesAndKeepsServing(string kind)
    {
        TorchServable servable = Servable(kind);
        using Tensor bad = torch.zeros(2, 5);

        TorchInputException ex = Assert.Throws<TorchInputException>(() => servable.Forward(bad));

        Assert.Contains($"{kind}:1", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Float32[2, 5] on cpu", ex.Message, StringComparison.Ordinal);
        Assert.Contains("2x5", ex.Problem, StringComparison.Ordinal); // libtorch: mat1 and mat2 shapes cannot be multiplied (2x5 and ...)
        Assert.DoesNotContain("frame #", ex.Message, StringComparison.Ordinal);
        float[] x = TestModels.Inputs(3, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(servable, x, TestModels.MlpInputs));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Forward_WrongRank_ThrowsTorchInputExceptionAndKeepsServing(string kind)
    {
        TorchServable servable = Servable(kind);
        using Tensor bad = torch.zeros(2, 2, 8, 3);

        Assert.Throws<TorchInputException>(() => servable.Forward(bad));

        float[] x = TestModels.Inputs(1, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(servable, x, TestModels.MlpInputs));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Forward_Float64IntoAFloat32Module_ThrowsBeforeRunningSayingHowToConvert(string kind)
    {
        TorchServable servable = Servable(kind);
        using Tensor bad = torch.zeros([2, 8], ScalarType.Float64);

        TorchInputException ex = Assert.Throws<TorchInputException>(() => servable.Forward(bad));

        Assert.Null(ex.InnerException); // found before libtorch ran
        Assert.Contains("element type Float64; the module's parameters are Float32", ex.Problem, StringComparison.Ordinal);
        float[] x = TestModels.Inputs(2, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(servable, x, TestModels.MlpInputs));
    }

    [Fact]
    public void Forward_TwoInputsIntoAOneInputModule_Throws()
    {
        using Tensor a = torch.zeros(1, 8);
        using Tensor b = torch.zeros(1, 8);

        Assert.Contains("takes one tensor; 2 were given", Assert.Throws<TorchInputException>(() => _module.Value!.Forward([a, b])).Problem, StringComparison.Ordinal);
        Assert.Contains("libtorch refused them", Assert.Throws<TorchInputException>(() => _script.Value!.Forward([a, b])).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Forward_ADisposedInput_ThrowsNamingIt()
    {
        Tensor gone = torch.zeros(1, 8);
        gone.Dispose();

        Assert.Contains("input 0 was disposed", Assert.Throws<TorchInputException>(() => _script.Value!.Forward(gone)).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Forward_ModuleWhoseParametersRequireGrad_OutputHasNoAutogradHistory()
    {
        TorchServable servable = _module.Value!;
        Assert.All(servable.Module.parameters(), p => Assert.True(p.requires_grad));
        using Tensor x = torch.ones(2, 8);

        using Tensor y = servable.Forward(x);

        Assert.False(y.requires_grad);
        Assert.True(torch.is_grad_enabled()); // no_grad ended with the call
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Forward_InsideTheCallersDisposeScope_OnlyTheOutputJoinsIt(string kind)
    {
        using Tensor x = torch.ones(4, 8);
        Tensor y;
        using (DisposeScope scope = torch.NewDisposeScope())
        {
            y = Servable(kind).Forward(x);
            Assert.Equal(1, scope.DisposablesCount); // intermediates were disposed inside the call
            Assert.False(y.IsInvalid);
        }

        Assert.True(y.IsInvalid); // the caller's scope owned it
        Assert.False(x.IsInvalid);
    }

    [Fact]
    public async Task Forward_ManyThreadsAtOnce_EveryResultIsRight()
    {
        TorchServable servable = _script.Value!;
        int failures = 0;
        Task[] callers = [.. Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            float[] x = TestModels.Inputs(t + 1, TestModels.MlpInputs, seed: t);
            float[] expected = TestModels.ExpectedMlp(1, x);
            for (int i = 0; i < 200; i++)
            {
                float[] y = TestModels.RunFloat(servable, x, TestModels.MlpInputs);
                if (!y.Zip(expected).All(p => Math.Abs(p.First - p.Second) <= 1e-4f * Math.Max(1, Math.Abs(p.Second))))
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }))];

        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, failures);
    }

    [Fact]
    public void Dispose_WhileACallIsInFlight_ReleasesTheModuleWhenTheCallEnds()
    {
        TorchServable servable = _script.Value!;
        servable.EnterRun(); // a Forward that has not returned yet

        servable.Dispose();

        Assert.True(servable.IsDisposed);
        Assert.False(servable.IsModuleReleased);
        using Tensor x = torch.ones(1, 8);
        Assert.Throws<ObjectDisposedException>(() => servable.Forward(x));
        servable.ExitRun();
        Assert.True(servable.IsModuleReleased);
        servable.Dispose(); // idempotent
    }

    [Fact]
    public void ToString_NamesVersionKindAndDevice()
    {
        Assert.Equal("script:1 (TorchScript) on Cpu", _script.Value!.ToString());
        Assert.Equal("module:1 (TorchSharpWeights) on Cpu", _module.Value!.ToString());
    }

    private TorchServable Servable(string kind) => (kind == "script" ? _script : _module).Value!;
}
