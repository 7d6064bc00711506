using System.Globalization;

namespace Servables.QuickStart;

/// <summary>A tiny real "model": y = weight * x + bias, read from <c>model.txt</c> in its version folder.</summary>
public sealed class LinearModel(float weight, float bias)
{
    public float Weight { get; } = weight;

    public float Bias { get; } = bias;

    public float Predict(float x) => (Weight * x) + Bias;

    public static async Task<LinearModel> ReadAsync(string versionPath, CancellationToken cancellationToken)
    {
        string text = await File.ReadAllTextAsync(Path.Combine(versionPath, "model.txt"), cancellationToken);
        string[] parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length != 2
            || !float.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out float weight)
            || !float.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out float bias))
        {
            throw new InvalidDataException($"{versionPath}/model.txt must hold two numbers, 'weight bias'; it holds '{text.Trim()}'.");
        }

        return new LinearModel(weight, bias);
    }
}
