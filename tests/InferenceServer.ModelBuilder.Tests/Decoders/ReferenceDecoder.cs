using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The decoder's arithmetic written out with loops in double precision, from the same <see cref="DecoderWeights"/>
/// but independently of the graph: Llama's forward pass (RMSNorm, GQA attention with rotate-half rotary
/// embeddings and a causal mask, SiLU-gated MLP) over one unpadded sequence.
/// </summary>
internal static class ReferenceDecoder
{
    /// <summary>Logits <c>[n][vocab]</c> of <paramref name="tokens"/> at <paramref name="positions"/>.</summary>
    public static double[][] Forward(DecoderWeights w, long[] tokens, long[] positions)
    {
        var o = w.Options;
        int n = tokens.Length, d = o.DModel, dim = o.HeadDim, group = o.QueryGroupSize;
        var x = new double[n][];
        var embed = w[DecoderWeights.EmbedTokens].Values;
        for (int s = 0; s < n; s++)
        {
            x[s] = Enumerable.Range(0, d).Select(j => (double)embed[tokens[s] * d + j]).ToArray();
        }

        for (int layer = 0; layer < o.Layers; layer++)
        {
            string P(string suffix) => DecoderWeights.Layer(layer, suffix);
            var h = x.Select(r => RmsNorm(r, w[P("input_layernorm.weight")].Values, o.RmsNormEps)).ToArray();
            var q = new double[n][];
            var k = new double[n][];
            for (int s = 0; s < n; s++)
            {
                q[s] = Rotate(MatVec(h[s], w[P("self_attn.q_proj.weight")]), o.Heads, dim, positions[s], w);
                k[s] = Rotate(MatVec(h[s], w[P("self_attn.k_proj.weight")]), o.KvHeads, dim, positions[s], w);
            }

            var v = h.Select(r => MatVec(r, w[P("self_attn.v_proj.weight")])).ToArray();
            var context = new double[n][];
            for (int s = 0; s < n; s++)
            {
                context[s] = new double[o.Heads * dim];
                for (int head = 0; head < o.Heads; head++)
                {
                    int kvHead = head / group;
                    var scores = new double[s + 1];
                    for (int t = 0; t <= s; t++)
                    {
                        double dot = 0;
                        for (int j = 0; j < dim; j++)
                        {
                            dot += q[s][head * dim + j] * k[t][kvHead * dim + j];
                        }

                        scores[t] = dot / Math.Sqrt(dim);
                    }

                    double max = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - max)).ToArray();
                    double sum = e.Sum();
                    for (int t = 0; t <= s; t++)
                    {
                        for (int j = 0; j < dim; j++)
                        {
                            context[s][head * dim + j] += e[t] / sum * v[t][kvHead * dim + j];
                        }
                    }
                }
            }

            for (int s = 0; s < n; s++)
            {
                var attention = MatVec(context[s], w[P("self_attn.o_proj.weight")]);
                for (int j = 0; j < d; j++)
                {
                    x[s][j] += attention[j];
                }

                var h2 = RmsNorm(x[s], w[P("post_attention_layernorm.weight")].Values, o.RmsNormEps);
                var gate = MatVec(h2, w[P("mlp.gate_proj.weight")]);
                var up = MatVec(h2, w[P("mlp.up_proj.weight")]);
                var inner = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                var down = MatVec(inner, w[P("mlp.down_proj.weight")]);
                for (int j = 0; j < d; j++)
                {
                    x[s][j] += down[j];
                }
            }
        }

        return x.Select(r => MatVec(RmsNorm(r, w[DecoderWeights.FinalNorm].Values, o.RmsNormEps), w[DecoderWeights.LmHead])).ToArray();
    }

    private static double[] RmsNorm(double[] x, float[] weight, float eps)
    {
        double meanSquare = x.Average(v => v * v);
        double scale = 1 / Math.Sqrt(meanSquare + eps);
        return x.Select((v, i) => v * scale * weight[i]).ToArray();
    }

    /// <summary><c>x · W</c> for <c>W</c> stored <c>[in, out]</c>.</summary>
    private static double[] MatVec(double[] x, DecoderTensor weight)
    {
        int rows = (int)weight.Dims[0], cols = (int)weight.Dims[1];
        Assert.Equal(rows, x.Length);
        var y = new double[cols];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                y[j] += x[i] * weight.Values[i * cols + j];
            }
        }

        return y;
    }

    /// <summary>Rotary embedding of every head: pairs (j, j + dim/2) rotated by <c>position · θ^(−2j/dim)</c>.</summary>
    private static double[] Rotate(double[] x, int heads, int dim, long position, DecoderWeights w)
    {
        int half = dim / 2;
        var y = new double[x.Length];
        for (int head = 0; head < heads; head++)
        {
            for (int j = 0; j < half; j++)
            {
                double angle = position / Math.Pow(w.Options.RopeTheta, 2.0 * j / dim);
                double a = x[head * dim + j], b = x[head * dim + j + half];
                y[head * dim + j] = a * Math.Cos(angle) - b * Math.Sin(angle);
                y[head * dim + j + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
            }
        }

        return y;
    }
}
