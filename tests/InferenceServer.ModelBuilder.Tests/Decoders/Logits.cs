namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>Comparisons of logit rows.</summary>
internal static class Logits
{
    /// <summary>The largest absolute difference between two rows of the same length.</summary>
    public static float MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float d = Math.Abs(a[i] - b[i]);
            Assert.False(float.IsNaN(d), $"NaN at {i}");
            max = Math.Max(max, d);
        }

        return max;
    }

    /// <summary>The arg-max of a row and its margin over the runner-up.</summary>
    public static (int Token, float Margin) Top(float[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++)
        {
            if (row[i] > row[best])
            {
                best = i;
            }
        }

        float second = float.NegativeInfinity;
        for (int i = 0; i < row.Length; i++)
        {
            if (i != best)
            {
                second = Math.Max(second, row[i]);
            }
        }

        return (best, row[best] - second);
    }

    /// <summary>The standard deviation of a row (to show the tolerances are small against the logits' spread).</summary>
    public static double StdDev(float[] row)
    {
        double mean = row.Average(v => (double)v);
        return Math.Sqrt(row.Average(v => (v - mean) * (v - mean)));
    }
}
