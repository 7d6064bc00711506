using Servables.Testing.Onnx;
using TorchSharp;

namespace Servables.QuickStart;

/// <summary>The quick start's models: a linear classifier of 4 features into 3 classes, as an ONNX model and as a TorchSharp module, in numeric version folders.</summary>
internal static class IrisModels
{
    public static readonly string[] Labels = ["setosa", "versicolor", "virginica"];

    /// <summary>Samples to classify: 4 features each.</summary>
    public static readonly float[][] Samples = [[5.1f, 3.5f, 1.4f, 0.2f], [6.0f, 2.7f, 5.1f, 1.6f], [6.9f, 3.1f, 5.4f, 2.1f], [5.7f, 2.8f, 4.1f, 1.3f]];

    /// <summary>Each version's weights ([4 inputs, 3 classes]) and biases; version 2 weighs the petals more.</summary>
    private static readonly Dictionary<long, (float[,] W, float[] B)> Versions = new()
    {
        [1] = (new float[,] { { 0.4f, 0.1f, -0.3f }, { 1.0f, -0.2f, -0.6f }, { -1.2f, 0.3f, 0.9f }, { -0.9f, 0.2f, 1.1f } }, [1.0f, 0.5f, -1.5f]),
        [2] = (new float[,] { { 0.3f, 0.2f, -0.2f }, { 1.1f, -0.3f, -0.7f }, { -1.6f, 0.4f, 1.2f }, { -1.2f, 0.1f, 1.5f } }, [1.2f, 0.4f, -1.8f]),
    };

    /// <summary>Writes version <paramref name="version"/> of the ONNX model under <paramref name="basePath"/>, atomically (staged, then renamed in).</summary>
    public static void WriteOnnx(string basePath, long version)
    {
        (float[,] w, float[] b) = Versions[version];
        Stage(basePath, version, folder => OnnxModelWriter.Linear(w, b).WriteTo(Path.Combine(folder, "model.onnx")));
    }

    /// <summary>Writes version <paramref name="version"/> of the TorchSharp module's weights under <paramref name="basePath"/>.</summary>
    public static void WriteTorch(string basePath, long version)
    {
        (float[,] w, float[] b) = Versions[version];
        Stage(basePath, version, folder =>
        {
            using torch.nn.Module<torch.Tensor, torch.Tensor> module = NewTorchModule();
            using (torch.no_grad())
            {
                var linear = (TorchSharp.Modules.Linear)module;
                using torch.Tensor weight = torch.tensor(Flatten(w), [4, 3]).t();
                using torch.Tensor bias = torch.tensor(b);
                linear.weight!.copy_(weight);
                linear.bias!.copy_(bias);
            }

            module.save(Path.Combine(folder, "model.dat"));
        });
    }

    /// <summary>The module the Torch servable loads its weights into.</summary>
    public static torch.nn.Module<torch.Tensor, torch.Tensor> NewTorchModule() => torch.nn.Linear(4, 3);

    /// <summary>What version <paramref name="version"/> answers for <paramref name="x"/>: x·W + b.</summary>
    public static float[] Expected(long version, float[] x)
    {
        (float[,] w, float[] b) = Versions[version];
        var y = new float[3];
        for (int j = 0; j < 3; j++)
        {
            y[j] = b[j];
            for (int i = 0; i < 4; i++)
            {
                y[j] += x[i] * w[i, j];
            }
        }

        return y;
    }

    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        int best = 0;
        for (int i = 1; i < scores.Length; i++)
        {
            best = scores[i] > scores[best] ? i : best;
        }

        return best;
    }

    public static bool Close(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        for (int i = 0; i < a.Length; i++)
        {
            if (Math.Abs(a[i] - b[i]) > 1e-4f)
            {
                return false;
            }
        }

        return a.Length == b.Length;
    }

    private static float[] Flatten(float[,] m) => [.. m.Cast<float>()];

    private static void Stage(string basePath, long version, Action<string> write)
    {
        string staging = Path.Combine(basePath, $".staging-{version}");
        Directory.CreateDirectory(staging);
        write(staging);
        Directory.Move(staging, Path.Combine(basePath, version.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }
}
