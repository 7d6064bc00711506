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

    /// <summary>Weights of a 2-layer MLP <paramref name="inputs"/> → <paramref name="hidden"/> → <paramref name="outputs"/>, of both signs, rounded to 3 decimals, the same for a seed.</summary>
    public static (float[,] W1, float[] B1, float[,] W2, float[] B2) MlpWeights(int seed, int inputs, int hidden, int outputs)
    {
        var random = new Random(seed);
        float Next() => (float)Math.Round((random.NextDouble() * 2) - 1, 3);
        var w1 = new float[inputs, hidden];
        var w2 = new float[hidden, outputs];
        var b1 = new float[hidden];
        var b2 = new float[outputs];
        for (int i = 0; i < inputs; i++)
        {
            for (int j = 0; j < hidden; j++)
            {
                w1[i, j] = Next();
            }
        }

        for (int i = 0; i < hidden; i++)
        {
            b1[i] = Next();
            for (int j = 0; j < outputs; j++)
            {
                w2[i, j] = Next();
            }
        }

        for (int j = 0; j < outputs; j++)
        {
            b2[j] = Next();
        }

        return (w1, b1, w2, b2);
    }
}
