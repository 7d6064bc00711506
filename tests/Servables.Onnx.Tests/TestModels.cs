using Servables.Testing;
using Microsoft.ML.OnnxRuntime;
using Servables.Testing.Onnx;

namespace Servables.Onnx.Tests;

/// <summary>Small real models written with <see cref="OnnxModelWriter"/>, and their outputs computed in C#.</summary>
internal static class TestModels
{
    public const int LinearInputs = 4;
    public const int LinearOutputs = 2;

    /// <summary>Y = X·W + B where W and B depend on <paramref name="version"/>, so that outputs tell versions apart.</summary>
    public static (float[,] W, float[] B) LinearWeights(long version)
    {
        var w = new float[LinearInputs, LinearOutputs];
        for (int i = 0; i < LinearInputs; i++)
        {
            for (int j = 0; j < LinearOutputs; j++)
            {
                w[i, j] = ((i + 1) * (j % 2 == 0 ? 1 : -1) * 0.5f) + version;
            }
        }

        return (w, [version * 10, -version]);
    }

    public static byte[] Linear(long version)
    {
        (float[,] w, float[] b) = LinearWeights(version);
        return OnnxModelWriter.Linear(w, b).ToArray();
    }

    public static float[] ExpectedLinear(long version, float[] x)
    {
        (float[,] w, float[] b) = LinearWeights(version);
        return Affine(x, w, b, relu: false);
    }

    /// <summary>A 2-layer MLP with <paramref name="inputs"/> → <paramref name="hidden"/> (Relu) → <paramref name="outputs"/>, deterministic weights with both signs.</summary>
    public static (float[,] W1, float[] B1, float[,] W2, float[] B2) MlpWeights(int inputs = 8, int hidden = 16, int outputs = 3) =>
        ReferenceMath.MlpWeights(42, inputs, hidden, outputs);

    public static byte[] Mlp()
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = MlpWeights();
        return OnnxModelWriter.Mlp(w1, b1, w2, b2).ToArray();
    }

    public static float[] ExpectedMlp(float[] x)
    {
        (float[,] w1, float[] b1, float[,] w2, float[] b2) = MlpWeights();
        return Affine(Affine(x, w1, b1, relu: true), w2, b2, relu: false);
    }

    /// <inheritdoc cref="ReferenceMath.Affine"/>
    public static float[] Affine(float[] x, float[,] w, float[] b, bool relu) => ReferenceMath.Affine(x, w, b, relu);

    /// <inheritdoc cref="ReferenceMath.Inputs"/>
    public static float[] Inputs(int batch, int features, int seed = 1) => ReferenceMath.Inputs(batch, features, seed);

    /// <inheritdoc cref="ModelRepository.WriteVersion"/>
    public static string WriteVersion(string basePath, long version, byte[] model, string fileName = "model.onnx") => ModelRepository.WriteVersion(basePath, version, model, fileName);

    /// <inheritdoc cref="ModelRepository.MoveVersionIn"/>
    public static string MoveVersionIn(string basePath, long version, byte[] model, string fileName = "model.onnx") => ModelRepository.MoveVersionIn(basePath, version, model, fileName);

    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance = 1e-4f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float allowed = tolerance * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= allowed, $"Element {i}: expected {expected[i]}, got {actual[i]}.");
        }
    }

    /// <summary>Runs a one-input, one-output float model through the dictionary API and copies the output.</summary>
    public static float[] RunFloat(OnnxServable servable, float[] x, int features, string input = "X")
    {
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(x, [x.Length / features, features]);
        using IDisposableReadOnlyCollection<OrtValue> outputs = servable.Run(new Dictionary<string, OrtValue> { [input] = value });
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
