namespace Servables.Benchmarks.Onnx;

/// <summary>Seeded random weights and inputs for the benchmarks' small ONNX models.</summary>
internal static class RandomWeights
{
    /// <summary>A rows × columns matrix, scaled by 1/√rows so that activations stay near 1.</summary>
    public static float[,] Matrix(Random random, int rows, int columns)
    {
        var m = new float[rows, columns];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                m[r, c] = (float)((random.NextDouble() * 2) - 1) / MathF.Sqrt(rows);
            }
        }

        return m;
    }

    /// <summary>Values in [-1, 1).</summary>
    public static float[] Vector(Random random, int length) =>
        [.. Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2) - 1))];
}
