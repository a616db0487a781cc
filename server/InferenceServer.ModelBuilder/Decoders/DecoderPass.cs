namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The values one forward pass reads and writes (see <see cref="DecoderPass"/>), by name. The pass always reads
/// <see cref="OptimumDecoderLayout.InputIds"/> and <see cref="OptimumDecoderLayout.AttentionMask"/> and the weights of
/// <see cref="DecoderWeights"/>; those are the same in every layout.
/// </summary>
internal sealed record DecoderPassValues
{
    /// <summary>INT64 positions of the new tokens, <c>[batch_size, sequence_length]</c> or <c>[1, sequence_length]</c>.</summary>
    public required string Positions { get; init; }

    /// <summary>Whether the pass reads <c>past_key_values.{i}.key/value</c>; without, the present is the new tokens' keys and values alone.</summary>
    public required bool ReadsPast { get; init; }

    /// <summary>The name the logits get.</summary>
    public required string Logits { get; init; }

    /// <summary>The name the present keys of a layer get.</summary>
    public required Func<int, string> PresentKey { get; init; }

    /// <summary>The name the present values of a layer get.</summary>
    public required Func<int, string> PresentValue { get; init; }

    /// <summary>The result names in the layouts' output order: the logits, then each layer's present key and value.</summary>
    public IReadOnlyList<string> OutputNames(int layers) =>
        [Logits, .. Enumerable.Range(0, layers).SelectMany(i => new[] { PresentKey(i), PresentValue(i) })];
}

/// <summary>
/// One forward pass of a Llama-style decoder over a call's new tokens, emitted with standard opset-17 operators only
/// (no contrib ops); every layout's graph is made of it (<see cref="DecoderGraph"/>, <see cref="LegacyMergedDecoderGraph"/>),
/// and its attention of the pieces every decoder graph shares (<see cref="KvAttention"/>):
/// <list type="number">
/// <item>token embedding (Gather of <c>input_ids</c>);</item>
/// <item>per layer: RMSNorm → Q/K/V MatMuls (<c>Heads</c> query heads, <c>KvHeads</c> KV heads) → rotary embedding
/// (rotate-half form, cos/sin rows gathered by the positions) of Q and K → present key/value = Concat(past, new) along
/// the sequence axis (the new alone when the pass reads no past), with <c>KvHeads</c> heads → each KV head repeated for
/// its <c>Heads / KvHeads</c> query heads (Unsqueeze, Expand, Reshape) → scores <c>QKᵀ/√head_dim</c> plus an additive
/// mask → Softmax → weighted values → output projection → residual; RMSNorm → SiLU-gated MLP → residual;</item>
/// <item>final RMSNorm → LM head → logits.</item>
/// </list>
/// The mask lets the query at column <c>past + s</c> of the concatenated sequence see key column <c>t</c> only when
/// <c>t ≤ past + s</c> (causal) and <c>attention_mask[b, t] = 1</c> (padding, left or anywhere), where
/// <c>past = attention_mask</c>'s length − <c>sequence_length</c>: a masked score gets <see cref="DecoderGraph.MaskedScore"/>
/// and so an exactly zero weight. Rows of padded queries attend uniformly among masked keys and stay finite.
/// </summary>
internal static class DecoderPass
{
    /// <summary>Emits the pass into <paramref name="g"/>'s graph, naming its results as <paramref name="values"/> says.</summary>
    public static void Emit(GraphEmitter g, DecoderOptions o, DecoderPassValues values)
    {
        g.Scope = "/model/mask";
        string bias = KvAttention.MaskBias(g);

        g.Scope = "/model/rotary_emb";
        string cos = g.Op("Unsqueeze", [g.Op("Gather", [DecoderWeights.RopeCosName, values.Positions]), g.Int64s(1)]);
        string sin = g.Op("Unsqueeze", [g.Op("Gather", [DecoderWeights.RopeSinName, values.Positions]), g.Int64s(1)]);

        g.Scope = "/model/embed_tokens";
        string x = g.Op("Gather", [DecoderWeights.EmbedTokens, OptimumDecoderLayout.InputIds]);

        for (int i = 0; i < o.Layers; i++)
        {
            g.Scope = $"/model/layers.{i}/input_layernorm";
            string h = RmsNorm(g, x, DecoderWeights.Layer(i, "input_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/self_attn";
            string attention = Attention(g, h, i, bias, cos, sin, o, values);
            x = g.Op("Add", [x, attention]);

            g.Scope = $"/model/layers.{i}/post_attention_layernorm";
            h = RmsNorm(g, x, DecoderWeights.Layer(i, "post_attention_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/mlp";
            x = g.Op("Add", [x, Mlp(g, h, i)]);
        }

        g.Scope = "/model/norm";
        string final = RmsNorm(g, x, DecoderWeights.FinalNorm, o);
        g.Scope = "/lm_head";
        g.Op("MatMul", [final, DecoderWeights.LmHead], values.Logits);
    }

    private static string Attention(GraphEmitter g, string h, int layer, string bias, string cos, string sin, DecoderOptions o, DecoderPassValues values)
    {
        int dim = o.HeadDim;
        string q = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.q_proj.weight")]), o.Heads, dim);
        string k = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.k_proj.weight")]), o.KvHeads, dim);
        string v = KvAttention.SplitHeads(g, g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.v_proj.weight")]), o.KvHeads, dim);
        q = Rotary(g, q, cos, sin, dim);
        k = Rotary(g, k, cos, sin, dim);

        var (presentKey, presentValue) = KvAttention.AppendToCache(g, layer, k, v, values.PresentKey(layer), values.PresentValue(layer), values.ReadsPast);
        string keys = RepeatKvHeads(g, presentKey, o);
        string vals = RepeatKvHeads(g, presentValue, o);
        string context = KvAttention.ScaledDotProduct(g, q, keys, vals, bias, dim, o.Precision);
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

    /// <summary>The SiLU-gated MLP of <paramref name="layer"/>: <c>down(silu(gate(h)) · up(h))</c>.</summary>
    internal static string Mlp(GraphEmitter g, string h, int layer)
    {
        string gate = g.Op("MatMul", [h, DecoderWeights.Layer(layer, "mlp.gate_proj.weight")]);
        string silu = g.Op("Mul", [gate, g.Op("Sigmoid", [gate])]);
        string up = g.Op("MatMul", [h, DecoderWeights.Layer(layer, "mlp.up_proj.weight")]);
        return g.Op("MatMul", [g.Op("Mul", [silu, up]), DecoderWeights.Layer(layer, "mlp.down_proj.weight")]);
    }

    /// <summary><c>x / √(mean(x²) + eps) · weight</c> over the last axis, computed in FLOAT.</summary>
    internal static string RmsNorm(GraphEmitter g, string x, string weight, DecoderOptions o)
    {
        string xf = KvAttention.ToFloat(g, x, o.Precision);
        string meanSquare = g.Op("ReduceMean", [g.Op("Mul", [xf, xf])], attributes: [NodeAttribute.Ints("axes", -1), NodeAttribute.Int("keepdims", 1)]);
        string rms = g.Op("Sqrt", [g.Op("Add", [meanSquare, g.FloatScalar(o.RmsNormEps)])]);
        return g.Op("Mul", [KvAttention.FromFloat(g, g.Op("Div", [xf, rms]), o.Precision), weight]);
    }
}
