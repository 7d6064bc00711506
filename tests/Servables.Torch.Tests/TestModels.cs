using Servables.Testing;
using System.Globalization;
using Servables.Testing.Torch;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Servables.Torch.Tests;

/// <summary>Small real modules (TorchScript archives from <see cref="TorchScriptWriter"/>, TorchSharp modules), and their outputs computed in C#.</summary>
internal static class TestModels
{
    public const int AffineInputs = 4;
    public const int AffineOutputs = 2;
    public const int MlpInputs = 8;
    public const int MlpHidden = 16;
    public const int MlpOutputs = 3;

    /// <summary>Y = X·W + B where W and B depend on <paramref name="version"/>, so that outputs tell versions apart.</summary>
    public static (float[,] W, float[] B) AffineWeights(long version)
    {
        var w = new float[AffineInputs, AffineOutputs];
        for (int i = 0; i < AffineInputs; i++)
        {
            for (int j = 0; j < AffineOutputs; j++)
            {
                w[i, j] = ((i + 1) * (j % 2 == 0 ? 1 : -1) * 0.5f) + version;
            }
        }

        return (w, [version * 10, -version]);
    }

    public static byte[] AffineScript(long version)
    {
        (float[,] w, float[] b) = AffineWeights(version);
        return TorchScriptWriter.Affine(w, b);
    }

    public static float[] ExpectedAffine(long version, float[] x)
    {
        (float[,] w, float[] b) = AffineWeights(version);
        return Affine(x, w, b, relu: false);
    }

    /// <summary>A 2-layer MLP 8 → 16 (Relu) → 3 with deterministic weights of both signs that differ by <paramref name="version"/>.</summary>
    public static (float[,] W1, float[] B1, float[,] W2, float[] B2) MlpWeights(long version) =>
        ReferenceMath.MlpWeights(42 + (int)version, MlpInputs, MlpHidden, MlpOutputs);

    public static byte[] MlpScript(long version)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = MlpWeights(version);
        return TorchScriptWriter.Mlp(w1, b1, w2, b2);
    }

    /// <summary>Version <paramref name="version"/>'s MLP as a TorchScript module with two submodules (parameters hidden.weight, hidden.bias, output.weight, output.bias).</summary>
    public static byte[] NestedMlpScript(long version)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = MlpWeights(version);
        return TorchScriptWriter.NestedMlp(w1, b1, w2, b2);
    }

    /// <summary>
    /// Weights of an MLP 8 → 16 (Relu) → 3 that are multiples of 1/4 in [-1, 1], different for each
    /// <paramref name="version"/>. With <see cref="ExactInputs"/> (multiples of 1/4 in [-2, 2]) every product
    /// and partial sum is exact in float32 (at most 15 significant bits), so the result is the same bits in any
    /// summation order: whatever GEMM kernel libtorch picks for a batch size, and equal to <see cref="ExpectedMlp(long, float[])"/>'s
    /// double-precision reference. (With ordinary weights libtorch's CPU results differ in the last bits between
    /// batch sizes: its kernels sum in another order from about 4 rows up.)
    /// </summary>
    public static (float[,] W1, float[] B1, float[,] W2, float[] B2) ExactMlpWeights(long version)
    {
        var random = new Random(1000 + (int)version);
        float Next() => random.Next(-4, 5) / 4f;
        var w1 = new float[MlpInputs, MlpHidden];
        var w2 = new float[MlpHidden, MlpOutputs];
        for (int i = 0; i < MlpInputs; i++)
        {
            for (int j = 0; j < MlpHidden; j++)
            {
                w1[i, j] = Next();
            }
        }

        for (int i = 0; i < MlpHidden; i++)
        {
            for (int j = 0; j < MlpOutputs; j++)
            {
                w2[i, j] = Next();
            }
        }

        return (w1, [.. Enumerable.Range(0, MlpHidden).Select(_ => Next())], w2, [.. Enumerable.Range(0, MlpOutputs).Select(_ => Next())]);
    }

    /// <summary>Version <paramref name="version"/>'s exact MLP (<see cref="ExactMlpWeights"/>) as a TorchScript archive.</summary>
    public static byte[] ExactMlpScript(long version)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = ExactMlpWeights(version);
        return TorchScriptWriter.Mlp(w1, b1, w2, b2);
    }

    /// <summary>Version <paramref name="version"/>'s exact MLP as a TorchSharp module (nn.Linear layers).</summary>
    public static MlpModule ExactMlp(long version) => WithWeights(new MlpModule(), ExactMlpWeights(version));

    /// <summary>What the exact MLP of <paramref name="version"/> computes, exactly.</summary>
    public static float[] ExpectedExactMlp(long version, float[] x)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = ExactMlpWeights(version);
        return Affine(Affine(x, w1, b1, relu: true), w2, b2, relu: false);
    }

    /// <summary><paramref name="batch"/> × <paramref name="features"/> inputs that are multiples of 1/4 in [-2, 2], the same for a seed.</summary>
    public static float[] ExactInputs(int batch, int features, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, batch * features).Select(_ => random.Next(-8, 9) / 4f)];
    }

    public static float[] ExpectedMlp(long version, float[] x)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = MlpWeights(version);
        return Affine(Affine(x, w1, b1, relu: true), w2, b2, relu: false);
    }

    /// <inheritdoc cref="ReferenceMath.Affine"/>
    public static float[] Affine(float[] x, float[,] w, float[] b, bool relu) => ReferenceMath.Affine(x, w, b, relu);

    /// <inheritdoc cref="ReferenceMath.Inputs"/>
    public static float[] Inputs(int batch, int features, int seed = 1) => ReferenceMath.Inputs(batch, features, seed);

    /// <summary>A TorchSharp MLP with version <paramref name="version"/>'s weights (or fresh random ones when null).</summary>
    public static MlpModule Mlp(long? version = null, int inputs = MlpInputs)
    {
        var module = new MlpModule(inputs);
        return version is { } v ? WithWeights(module, MlpWeights(v)) : module;
    }

    /// <summary>Copies the weights of an 8 → 16 → 3 MLP into <paramref name="module"/>.</summary>
    private static MlpModule WithWeights(MlpModule module, (float[,] W1, float[] B1, float[,] W2, float[] B2) weights)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = weights;
        using (torch.no_grad())
        {
            // nn.Linear keeps its weight as [out, in]: the transpose of W.
            using Tensor tw1 = torch.tensor(Flatten(w1), [MlpInputs, MlpHidden]);
            using Tensor tw2 = torch.tensor(Flatten(w2), [MlpHidden, MlpOutputs]);
            using Tensor tw1t = tw1.t();
            using Tensor tw2t = tw2.t();
            module.Hidden.weight!.copy_(tw1t);
            module.Output.weight!.copy_(tw2t);
            using Tensor tb1 = torch.tensor(b1);
            using Tensor tb2 = torch.tensor(b2);
            module.Hidden.bias!.copy_(tb1);
            module.Output.bias!.copy_(tb2);
        }

        return module;
    }

    /// <inheritdoc cref="ModelRepository.WriteVersion"/>
    public static string WriteVersion(string basePath, long version, byte[] model, string fileName = "model.pt") => ModelRepository.WriteVersion(basePath, version, model, fileName);

    /// <inheritdoc cref="ModelRepository.MoveVersionIn"/>
    public static string MoveVersionIn(string basePath, long version, byte[] model, string fileName = "model.pt") => ModelRepository.MoveVersionIn(basePath, version, model, fileName);

    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance = 1e-4f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float allowed = tolerance * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= allowed, $"Element {i}: expected {expected[i]}, got {actual[i]}.");
        }
    }

    /// <summary>Runs a float batch through the servable and copies the output out.</summary>
    public static float[] RunFloat(TorchServable servable, float[] x, int features)
    {
        using Tensor input = torch.tensor(x, [x.Length / features, features]);
        using Tensor output = servable.Forward(input);
        return output.data<float>().ToArray();
    }

    private static float[] Flatten(float[,] m)
    {
        var flat = new float[m.Length];
        int k = 0;
        foreach (float v in m)
        {
            flat[k++] = v;
        }

        return flat;
    }

    /// <summary>relu(x·W1ᵀ + b1)·W2ᵀ + b2 with TorchSharp's Linear layers: the same function as <see cref="TorchScriptWriter.Mlp"/>.</summary>
    public sealed class MlpModule : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // Field names are the state_dict keys, as in PyTorch: hidden.weight, output.bias.
        private readonly Linear hidden;
        private readonly Linear output;
#pragma warning restore IDE1006, SA1300

        public MlpModule(int inputs = MlpInputs)
            : base("Mlp")
        {
            hidden = nn.Linear(inputs, MlpHidden);
            output = nn.Linear(MlpHidden, MlpOutputs);
            RegisterComponents();
        }

        public Linear Hidden => hidden;

        public Linear Output => output;

        public override Tensor forward(Tensor input)
        {
            using Tensor h = Hidden.forward(input);
            using Tensor r = torch.nn.functional.relu(h);
            return Output.forward(r);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Hidden.Dispose();
                Output.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
