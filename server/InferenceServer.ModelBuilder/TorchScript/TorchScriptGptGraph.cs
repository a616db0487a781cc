using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>
/// The ONNX graph of a <see cref="TorchScriptGpt"/> in Optimum's <c>text-generation-with-past</c> layout
/// (<see cref="OptimumDecoderLayout"/>), FLOAT throughout, from standard opset-17 operators:
/// <list type="number">
/// <item>token row (Gather of <c>input_ids</c>) plus position row (Gather of <c>position_ids</c> from the learned
/// table, so positions must be below the archive's context);</item>
/// <item>per block, as the archive's <c>Block.forward</c>: <c>a = LayerNorm₁(x)</c>; one MatMul to queries, keys and
/// values (Split); <c>present.{i}.key/value</c> = Concat(past, new); <c>b = a + attention</c> (no output projection);
/// <c>x = Proj(gelu(Fc(b))) + LayerNorm₂(b)</c> with the exact (erf) GELU;</item>
/// <item>the de-embedding MatMul plus bias → <c>logits</c>.</item>
/// </list>
/// Attention is <see cref="KvAttention"/>'s, as in the Llama decoder's <see cref="DecoderPass"/>: scores
/// <c>QKᵀ/√head_dim</c>, causal over the concatenated columns and masked by <c>attention_mask</c> (−10⁹), so ragged
/// left-padded batches decode as each sequence alone.
/// </summary>
public static class TorchScriptGptGraph
{
    /// <summary>The operator set the graph is written against (17: the first with LayerNormalization).</summary>
    public const int Opset = 17;

    /// <summary>Builds the graph of <paramref name="model"/> (weights inside the model).</summary>
    public static OnnxGraphBuilder Build(TorchScriptGpt model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var builder = new OnnxGraphBuilder("decoder", Opset)
            .DocString($"Character-level GPT exported from the TorchScript archive's {model.ClassName} by InferenceServer.ModelBuilder, in Optimum's text-generation-with-past layout.");
        var g = new GraphEmitter(builder);
        OptimumDecoderLayout.Declare(builder, model.Shape);
        foreach (var tensor in Weights(model))
        {
            builder.Initializer(tensor.Name, tensor.Dims, tensor.Values);
        }

        g.Scope = "/model/mask";
        string bias = KvAttention.MaskBias(g);

        g.Scope = "/model/embed";
        string x = g.Op("Add", [
            g.Op("Gather", [model.TokenEmbedding.Name, OptimumDecoderLayout.InputIds]),
            g.Op("Gather", [model.PositionEmbedding.Name, OptimumDecoderLayout.PositionIds]),
        ]);

        for (int i = 0; i < model.Blocks.Count; i++)
        {
            var block = model.Blocks[i];
            g.Scope = $"/model/{block.Name}/ln1";
            string a = LayerNorm(g, x, block.Ln1, model.LayerNormEps);
            g.Scope = $"/model/{block.Name}/attn";
            string attention = Attention(g, a, i, block.Qkv, bias, model);
            string b = g.Op("Add", [a, attention]);

            g.Scope = $"/model/{block.Name}/ln2";
            string normed = LayerNorm(g, b, block.Ln2, model.LayerNormEps);
            g.Scope = $"/model/{block.Name}/mlp";
            string mlp = Linear(g, Gelu(g, Linear(g, b, block.Fc)), block.Proj);
            x = g.Op("Add", [mlp, normed]);
        }

        g.Scope = "/de_embed";
        Linear(g, x, model.LmHead, OptimumDecoderLayout.Logits);
        return builder;
    }

    private static IEnumerable<DecoderTensor> Weights(TorchScriptGpt model)
    {
        yield return model.TokenEmbedding;
        yield return model.PositionEmbedding;
        foreach (var block in model.Blocks)
        {
            foreach (var tensor in new[] { block.Ln1.Weight, block.Ln1.Bias, block.Qkv.Weight, block.Qkv.Bias, block.Ln2.Weight, block.Ln2.Bias, block.Fc.Weight, block.Fc.Bias, block.Proj.Weight, block.Proj.Bias })
            {
                if (tensor is not null)
                {
                    yield return tensor;
                }
            }
        }

        yield return model.LmHead.Weight;
        if (model.LmHead.Bias is not null)
        {
            yield return model.LmHead.Bias;
        }
    }

    /// <summary>Causal self-attention of block <paramref name="layer"/> over the cache: heads of one projection, concatenated back, no output projection.</summary>
    private static string Attention(GraphEmitter g, string a, int layer, GptLinear qkv, string bias, TorchScriptGpt model)
    {
        int width = model.Width;
        string[] parts = g.OpMany("Split", [Linear(g, a, qkv), g.Int64s(width, width, width)], 3, NodeAttribute.Int("axis", -1));
        string q = KvAttention.SplitHeads(g, parts[0], model.Heads, model.HeadDim);
        string k = KvAttention.SplitHeads(g, parts[1], model.Heads, model.HeadDim);
        string v = KvAttention.SplitHeads(g, parts[2], model.Heads, model.HeadDim);
        var (keys, values) = KvAttention.AppendToCache(g, layer, k, v);
        string context = KvAttention.ScaledDotProduct(g, q, keys, values, bias, model.HeadDim, DecoderPrecision.Float32);
        return KvAttention.MergeHeads(g, context, width);
    }

    private static string LayerNorm(GraphEmitter g, string x, GptLayerNorm norm, float eps) =>
        g.Op("LayerNormalization", [x, norm.Weight.Name, norm.Bias.Name], attributes: [NodeAttribute.Int("axis", -1), NodeAttribute.Float("epsilon", eps)]);

    /// <summary><c>x·W (+ b)</c>; the last node's output is <paramref name="output"/> when given.</summary>
    private static string Linear(GraphEmitter g, string x, GptLinear linear, string? output = null) =>
        linear.Bias is null
            ? g.Op("MatMul", [x, linear.Weight.Name], output)
            : g.Op("Add", [g.Op("MatMul", [x, linear.Weight.Name]), linear.Bias.Name], output);

    /// <summary>The exact GELU, <c>x · ½ · (1 + erf(x / √2))</c> (PyTorch's <c>approximate="none"</c>).</summary>
    private static string Gelu(GraphEmitter g, string x)
    {
        string erf = g.Op("Erf", [g.Op("Mul", [x, g.FloatScalar((float)(1 / Math.Sqrt(2)))])]);
        return g.Op("Mul", [g.Op("Mul", [x, g.FloatScalar(0.5f)]), g.Op("Add", [erf, g.FloatScalar(1f)])]);
    }
}
