namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The ONNX graph of a Llama-style decoder in Optimum's <c>text-generation-with-past</c> layout
/// (<see cref="OptimumDecoderLayout"/>), built from standard opset-17 operators only (no contrib ops):
/// <list type="number">
/// <item>token embedding (Gather of <c>input_ids</c>);</item>
/// <item>per layer: RMSNorm → Q/K/V MatMuls (<c>Heads</c> query heads, <c>KvHeads</c> KV heads) → rotary embedding
/// (rotate-half form, cos/sin rows gathered by <c>position_ids</c>) of Q and K → <c>present.{i}.key/value</c> =
/// Concat(past, new) along the sequence axis, with <c>KvHeads</c> heads → each KV head repeated for its
/// <c>Heads / KvHeads</c> query heads (Unsqueeze, Expand, Reshape) → scores <c>QKᵀ/√head_dim</c> plus an additive mask →
/// Softmax → weighted values → output projection → residual; RMSNorm → SiLU-gated MLP → residual;</item>
/// <item>final RMSNorm → LM head → <c>logits</c>.</item>
/// </list>
/// The mask lets the query at column <c>past + s</c> of the concatenated sequence see key column <c>t</c> only when
/// <c>t ≤ past + s</c> (causal) and <c>attention_mask[b, t] = 1</c> (padding, left or anywhere): a masked score gets
/// −10⁹ and so an exactly zero weight. Rows of padded queries attend uniformly among masked keys and stay finite.
/// Position ids come only from the caller (they need not start at 0 or follow the columns).
/// </summary>
public static class DecoderGraph
{
    /// <summary>The operator set the graph is written against.</summary>
    public const int Opset = 17;

    /// <summary>The additive score of a masked (causal-future or padded) key.</summary>
    public const float MaskedScore = KvAttention.MaskedScore;

    /// <summary>Builds the graph of <paramref name="weights"/> (weights inside the model; see <see cref="OnnxExternalData"/>).</summary>
    public static OnnxGraphBuilder Build(DecoderWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var o = weights.Options;
        var builder = new OnnxGraphBuilder("decoder", Opset)
            .DocString($"Llama-style decoder-only language model with deterministic random weights (seed {o.Seed}), written by InferenceServer.ModelBuilder in Optimum's text-generation-with-past layout.");
        var g = new GraphEmitter(builder);

        OptimumDecoderLayout.Declare(builder, o.Shape);
        foreach (var tensor in weights.Tensors.Append(weights.RopeCos).Append(weights.RopeSin))
        {
            builder.Initializer(ToInitializer(tensor, o.Precision));
        }

        g.Scope = "/model/mask";
        string bias = KvAttention.MaskBias(g);

        g.Scope = "/model/rotary_emb";
        string cos = g.Op("Unsqueeze", [g.Op("Gather", [DecoderWeights.RopeCosName, OptimumDecoderLayout.PositionIds]), g.Int64s(1)]);
        string sin = g.Op("Unsqueeze", [g.Op("Gather", [DecoderWeights.RopeSinName, OptimumDecoderLayout.PositionIds]), g.Int64s(1)]);

        g.Scope = "/model/embed_tokens";
        string x = g.Op("Gather", [DecoderWeights.EmbedTokens, OptimumDecoderLayout.InputIds]);

        for (int i = 0; i < o.Layers; i++)
        {
            g.Scope = $"/model/layers.{i}/input_layernorm";
            string h = RmsNorm(g, x, DecoderWeights.Layer(i, "input_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/self_attn";
            string attention = Attention(g, h, i, bias, cos, sin, o);
            x = g.Op("Add", [x, attention]);

            g.Scope = $"/model/layers.{i}/post_attention_layernorm";
            h = RmsNorm(g, x, DecoderWeights.Layer(i, "post_attention_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/mlp";
            string gate = g.Op("MatMul", [h, DecoderWeights.Layer(i, "mlp.gate_proj.weight")]);
            string silu = g.Op("Mul", [gate, g.Op("Sigmoid", [gate])]);
            string up = g.Op("MatMul", [h, DecoderWeights.Layer(i, "mlp.up_proj.weight")]);
            string down = g.Op("MatMul", [g.Op("Mul", [silu, up]), DecoderWeights.Layer(i, "mlp.down_proj.weight")]);
            x = g.Op("Add", [x, down]);
        }

        g.Scope = "/model/norm";
        string final = RmsNorm(g, x, DecoderWeights.FinalNorm, o);
        g.Scope = "/lm_head";
        g.Op("MatMul", [final, DecoderWeights.LmHead], OptimumDecoderLayout.Logits);
        return builder;
    }

    private static string Attention(GraphEmitter g, string h, int layer, string bias, string cos, string sin, DecoderOptions o)
    {
        int dim = o.HeadDim;
        string q = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.q_proj.weight")]), o.Heads, dim);
        string k = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.k_proj.weight")]), o.KvHeads, dim);
        string v = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.v_proj.weight")]), o.KvHeads, dim);
        q = Rotary(g, q, cos, sin, dim);
        k = Rotary(g, k, cos, sin, dim);

        var (presentKey, presentValue) = KvAttention.AppendToCache(g, layer, k, v);
        string keys = RepeatKvHeads(g, presentKey, o);
        string values = RepeatKvHeads(g, presentValue, o);
        string context = KvAttention.ScaledDotProduct(g, q, keys, values, bias, dim, o.Precision);
        context = KvAttention.MergeHeads(g, context, o.Heads * dim);
        return g.Op("MatMul", [context, DecoderWeights.Layer(layer, "self_attn.o_proj.weight")]);
    }

    /// <summary><c>x·cos + rotate_half(x)·sin</c> with <c>rotate_half([a, b]) = [−b, a]</c> over the last axis.</summary>
    private static string Rotary(GraphEmitter g, string x, string cos, string sin, int dim)
    {
        string[] halves = g.OpMany("Split", [x, g.Int64s(dim / 2, dim / 2)], 2, NodeAttribute.Int("axis", -1));
        string rotated = g.Op("Concat", [g.Op("Neg", [halves[1]]), halves[0]], attributes: NodeAttribute.Int("axis", -1));
        return g.Op("Add", [g.Op("Mul", [x, cos]), g.Op("Mul", [rotated, sin])]);
    }

    /// <summary><c>[batch, kv_heads, T, dim]</c> → <c>[batch, heads, T, dim]</c>, KV head <c>j</c> becoming query heads <c>j·G … j·G+G−1</c>.</summary>
    private static string RepeatKvHeads(GraphEmitter g, string kv, DecoderOptions o)
    {
        if (o.QueryGroupSize == 1)
        {
            return kv;
        }

        string expanded = g.Op("Expand", [g.Op("Unsqueeze", [kv, g.Int64s(2)]), g.Int64s(1, 1, o.QueryGroupSize, 1, 1)]);
        return g.Op("Reshape", [expanded, g.Int64s(0, o.Heads, -1, o.HeadDim)]);
    }

    /// <summary><c>x / √(mean(x²) + eps) · weight</c> over the last axis, computed in FLOAT.</summary>
    private static string RmsNorm(GraphEmitter g, string x, string weight, DecoderOptions o)
    {
        string xf = KvAttention.ToFloat(g, x, o.Precision);
        string meanSquare = g.Op("ReduceMean", [g.Op("Mul", [xf, xf])], attributes: [NodeAttribute.Ints("axes", -1), NodeAttribute.Int("keepdims", 1)]);
        string rms = g.Op("Sqrt", [g.Op("Add", [meanSquare, g.FloatScalar(o.RmsNormEps)])]);
        return g.Op("Mul", [KvAttention.FromFloat(g, g.Op("Div", [xf, rms]), o.Precision), weight]);
    }

    private static OnnxTensor ToInitializer(DecoderTensor tensor, DecoderPrecision precision) => precision switch
    {
        DecoderPrecision.Float32 => OnnxTensor.Create<float>(tensor.Name, tensor.Dims, tensor.Values),
        DecoderPrecision.Float16 => OnnxTensor.Create<Half>(tensor.Name, tensor.Dims, tensor.Values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Not a decoder precision."),
    };
}
