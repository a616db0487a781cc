namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The pieces of attention over an Optimum KV cache (<see cref="OptimumDecoderLayout"/>) that every decoder graph
/// shares, whatever its norms, position encoding and MLP: the additive mask over the concatenated columns, the split
/// into heads and back, appending the new keys and values to <c>past_key_values</c> as <c>present</c>, and the scaled
/// dot-product itself. Used by the Llama decoder's <see cref="DecoderPass"/> (in both the current and the legacy merged
/// layout) and by the TorchScript GPT export.
/// </summary>
internal static class KvAttention
{
    /// <summary>The additive score of a masked (causal-future or padded) key.</summary>
    public const float MaskedScore = -1e9f;

    /// <summary>
    /// FLOAT <c>[batch, 1, sequence, past + sequence]</c>: 0 where a query may see a key, <see cref="MaskedScore"/>
    /// elsewhere. The query at column <c>past + s</c> of the concatenated sequence sees key column <c>t</c> only when
    /// <c>t ≤ past + s</c> (causal) and <c>attention_mask[b, t] = 1</c> (padding, left or anywhere); <c>past</c> is
    /// the mask's width minus <c>input_ids</c>' length.
    /// </summary>
    public static string MaskBias(GraphEmitter g)
    {
        string one = g.Int64Scalar(1);
        string sequence = g.Op("Gather", [g.Op("Shape", [OptimumDecoderLayout.InputIds]), one]);
        string total = g.Op("Gather", [g.Op("Shape", [OptimumDecoderLayout.AttentionMask]), one]);
        string past = g.Op("Sub", [total, sequence]);
        string keyColumns = g.Op("Range", [g.Int64Scalar(0), total, one]);
        string queryColumns = g.Op("Range", [past, total, one]);
        string causal = g.Op("LessOrEqual", [g.Op("Unsqueeze", [keyColumns, g.Int64s(0)]), g.Op("Unsqueeze", [queryColumns, g.Int64s(1)])]);
        string real = g.Op("Cast", [OptimumDecoderLayout.AttentionMask], attributes: NodeAttribute.Int("to", (long)TensorElementKind.Bool));
        string allowed = g.Op("And", [causal, g.Op("Unsqueeze", [real, g.Int64s(1, 2)])]);
        return g.Op("Where", [allowed, g.FloatScalar(0f), g.FloatScalar(MaskedScore)]);
    }

    /// <summary><c>[batch, seq, heads·dim]</c> → <c>[batch, heads, seq, dim]</c>.</summary>
    public static string SplitHeads(GraphEmitter g, string projected, int heads, int dim) =>
        g.Op("Transpose", [g.Op("Reshape", [projected, g.Int64s(0, 0, heads, dim)])], attributes: NodeAttribute.Ints("perm", 0, 2, 1, 3));

    /// <summary><c>[batch, heads, seq, dim]</c> → <c>[batch, seq, heads·dim]</c>.</summary>
    public static string MergeHeads(GraphEmitter g, string context, int width) =>
        g.Op("Reshape", [g.Op("Transpose", [context], attributes: NodeAttribute.Ints("perm", 0, 2, 1, 3)), g.Int64s(0, 0, width)]);

    /// <summary>
    /// <c>present.{layer}.key/value</c> = Concat(<c>past_key_values.{layer}.key/value</c>, the new <paramref name="keys"/> /
    /// <paramref name="values"/>) along the sequence axis; returns the two graph outputs' names.
    /// </summary>
    public static (string Keys, string Values) AppendToCache(GraphEmitter g, int layer, string keys, string values) =>
        AppendToCache(g, layer, keys, values, OptimumDecoderLayout.PresentKey(layer), OptimumDecoderLayout.PresentValue(layer), readsPast: true);

    /// <summary>
    /// The present keys and values of <paramref name="layer"/>, named <paramref name="presentKey"/> and
    /// <paramref name="presentValue"/> (e.g. a subgraph's own names): Concat(<c>past_key_values.{layer}.key/value</c>,
    /// the new) along the sequence axis when <paramref name="readsPast"/>, else the new keys and values alone (a pass that
    /// never reads the past inputs).
    /// </summary>
    public static (string Keys, string Values) AppendToCache(
        GraphEmitter g, int layer, string keys, string values, string presentKey, string presentValue, bool readsPast) =>
        (Present(g, OptimumDecoderLayout.PastKey(layer), keys, presentKey, readsPast),
         Present(g, OptimumDecoderLayout.PastValue(layer), values, presentValue, readsPast));

    /// <summary>
    /// <c>softmax(Q·Kᵀ/√dim + bias)·V</c> per head, <c>[batch, heads, seq, dim]</c>: the scores and the softmax in FLOAT
    /// whatever <paramref name="precision"/> the tensors have; <paramref name="bias"/> is <see cref="MaskBias"/>.
    /// </summary>
    public static string ScaledDotProduct(GraphEmitter g, string queries, string keys, string values, string bias, int dim, DecoderPrecision precision)
    {
        string scores = g.Op("MatMul", [queries, g.Op("Transpose", [keys], attributes: NodeAttribute.Ints("perm", 0, 1, 3, 2))]);
        scores = g.Op("Mul", [ToFloat(g, scores, precision), g.FloatScalar((float)(1.0 / Math.Sqrt(dim)))]);
        string weights = g.Op("Softmax", [g.Op("Add", [scores, bias])], attributes: NodeAttribute.Int("axis", -1));
        return g.Op("MatMul", [FromFloat(g, weights, precision), values]);
    }

    /// <summary><paramref name="x"/> as FLOAT (a Cast unless <paramref name="precision"/> is FLOAT already).</summary>
    public static string ToFloat(GraphEmitter g, string x, DecoderPrecision precision) =>
        precision == DecoderPrecision.Float32 ? x : g.Op("Cast", [x], attributes: NodeAttribute.Int("to", (long)TensorElementKind.Float));

    /// <summary>A FLOAT <paramref name="x"/> back in <paramref name="precision"/>.</summary>
    public static string FromFloat(GraphEmitter g, string x, DecoderPrecision precision) =>
        precision == DecoderPrecision.Float32 ? x : g.Op("Cast", [x], attributes: NodeAttribute.Int("to", (long)precision.ElementKind()));

    private static string Present(GraphEmitter g, string past, string current, string name, bool readsPast) =>
        readsPast
            ? g.Op("Concat", [past, current], name, NodeAttribute.Int("axis", 2))
            : g.Op("Identity", [current], name);
}
