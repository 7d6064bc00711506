namespace Servables.Testing;

/// <summary>What test models compute, worked out in C# in double precision, to check a backend's numbers against.</summary>
public static class ReferenceMath
{
    /// <summary>Row-major [batch, in] · [in, out] + bias, optionally through Relu, in double precision.</summary>
    public static float[] Affine(float[] x, float[,] w, float[] b, bool relu)
    {
        int inputs = w.GetLength(0), outputs = w.GetLength(1), batch = x.Length / inputs;
        var y = new float[batch * outputs];
        for (int n = 0; n < batch; n++)
        {
            for (int j = 0; j < outputs; j++)
            {
                double sum = b[j];
                for (int i = 0; i < inputs; i++)
                {
                    sum += (double)x[(n * inputs) + i] * w[i, j];
                }

                y[(n * outputs) + j] = relu ? (float)Math.Max(0, sum) : (float)sum;
            }
        }

        return y;
    }

    /// <summary><paramref name="batch"/> × <paramref name="features"/> inputs in [-2, 2), rounded to 3 decimals, the same for a seed.</summary>
    public static float[] Inputs(int batch, int features, int seed = 1)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, batch * features).Select(_ => (float)Math.Round((random.NextDouble() * 4) - 2, 3))];
    }
}
