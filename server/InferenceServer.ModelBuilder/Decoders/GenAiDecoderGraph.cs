using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The ONNX graph of a Llama-style decoder as onnxruntime-genai's model builder (<c>builder.py</c>) exports it for the
/// CPU (<see cref="GenAiDecoderLayout"/>): the same weights and maths as <see cref="DecoderGraph"/> (RMSNorm, SiLU-gated
/// MLP, untied LM head), but each layer's attention is one <c>com.microsoft::GroupQueryAttention</c> node
/// (<c>do_rotary = 1</c>: rotate-half rotary from the <c>cos_cache</c>/<c>sin_cache</c> initializers,
/// <c>[max_position_embeddings, head_dim / 2]</c>), which also appends the new keys and values to the past.
/// There is no <c>position_ids</c> input: GroupQueryAttention numbers a row's new tokens after its past, from
/// <c>seqlens_k</c> (the row's <c>attention_mask</c> sum − 1, INT32 <c>[batch]</c>) and <c>total_sequence_length</c>
/// (the mask's width, INT32 scalar), both computed from <c>attention_mask</c> as <c>builder.py</c> does. The kernel reads
/// only the count of ones in a mask row, not where they are: a row's real tokens must come first (right padding).
/// </summary>
public static class GenAiDecoderGraph
{
    /// <summary>Domain of onnxruntime's contrib operators.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>Name of the rotary cosine initializer GroupQueryAttention reads, <c>[max_position_embeddings, head_dim / 2]</c>.</summary>
    public const string CosCache = "cos_cache";

    /// <summary>Name of the rotary sine initializer GroupQueryAttention reads, <c>[max_position_embeddings, head_dim / 2]</c>.</summary>
    public const string SinCache = "sin_cache";

    /// <summary>INT32 <c>[batch]</c>: each row's total length − 1.</summary>
    public const string SeqlensK = "/model/attn_mask_reformat/attn_mask_subgraph/seqlens_k";

    /// <summary>INT32 scalar: the attention mask's width.</summary>
    public const string TotalSequenceLength = "/model/attn_mask_reformat/attn_mask_subgraph/total_seq_len";

    /// <summary>Builds the graph of <paramref name="weights"/> (weights inside the model; see <see cref="OnnxExternalData"/>).</summary>
    /// <exception cref="ArgumentException">The weights are not FLOAT.</exception>
    public static OnnxGraphBuilder Build(DecoderWeights weights)
    {
        var (builder, g) = DecoderGraph.Start(weights, "main_graph", "onnxruntime-genai's model-builder layout", rotaryTables: false);
        var o = weights.Options;
        builder.OpsetImport(MicrosoftDomain, 1);
        var (cos, sin) = HalfTables(weights);
        builder.Initializer(DecoderGraph.ToInitializer(cos, o.Precision));
        builder.Initializer(DecoderGraph.ToInitializer(sin, o.Precision));
        GenAiDecoderLayout.Declare(builder, o.Shape);

        // builder.py's make_attention_mask_reformatting_for_gqa.
        g.Scope = "/model/attn_mask_reformat/attn_mask_subgraph";
        string rowLengths = g.Op("ReduceSum", [GenAiDecoderLayout.AttentionMask, g.Int64s(1)], attributes: NodeAttribute.Int("keepdims", 0));
        g.Op("Cast", [g.Op("Sub", [rowLengths, g.Int64Scalar(1)])], SeqlensK, NodeAttribute.Int("to", (long)TensorElementKind.Int32));
        string width = g.Op("Gather", [g.Op("Shape", [GenAiDecoderLayout.AttentionMask]), g.Int64Scalar(1)], attributes: NodeAttribute.Int("axis", 0));
        g.Op("Cast", [width], TotalSequenceLength, NodeAttribute.Int("to", (long)TensorElementKind.Int32));

        g.Scope = "/model/embed_tokens";
        string x = g.Op("Gather", [DecoderWeights.EmbedTokens, GenAiDecoderLayout.InputIds]);
        for (int i = 0; i < o.Layers; i++)
        {
            g.Scope = $"/model/layers.{i}/input_layernorm";
            string h = DecoderPass.RmsNorm(g, x, DecoderWeights.Layer(i, "input_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/attn";
            x = g.Op("Add", [x, Attention(g, h, i, o)]);

            g.Scope = $"/model/layers.{i}/post_attention_layernorm";
            h = DecoderPass.RmsNorm(g, x, DecoderWeights.Layer(i, "post_attention_layernorm.weight"), o);
            g.Scope = $"/model/layers.{i}/mlp";
            x = g.Op("Add", [x, DecoderPass.Mlp(g, h, i)]);
        }

        g.Scope = "/model/norm";
        string final = DecoderPass.RmsNorm(g, x, DecoderWeights.FinalNorm, o);
        g.Scope = "/lm_head";
        g.Op("MatMul", [final, DecoderWeights.LmHead], GenAiDecoderLayout.Logits);
        return builder;
    }

    /// <summary>The first halves of the rotary tables' rows (the second halves repeat them), as GroupQueryAttention reads them.</summary>
    public static (DecoderTensor Cos, DecoderTensor Sin) HalfTables(DecoderWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        int dim = weights.Options.HeadDim, half = dim / 2, rows = weights.Options.MaxPositions;
        float[] Half(float[] full)
        {
            var values = new float[rows * half];
            for (int p = 0; p < rows; p++)
            {
                Array.Copy(full, p * dim, values, p * half, half);
            }

            return values;
        }

        long[] dims = [rows, half];
        return (new DecoderTensor(CosCache, dims, Half(weights.RopeCos.Values)), new DecoderTensor(SinCache, dims, Half(weights.RopeSin.Values)));
    }

    private static string Attention(GraphEmitter g, string h, int layer, DecoderOptions o)
    {
        string q = g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.q_proj.weight")]);
        string k = g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.k_proj.weight")]);
        string v = g.Op("MatMul", [h, DecoderWeights.Layer(layer, "self_attn.v_proj.weight")]);
        string context = string.Create(CultureInfo.InvariantCulture, $"/model/layers.{layer}/attn/GroupQueryAttention/output_0");
        g.Builder.NodeInDomain(
            MicrosoftDomain,
            "GroupQueryAttention",
            [q, k, v, GenAiDecoderLayout.PastKey(layer), GenAiDecoderLayout.PastValue(layer), SeqlensK, TotalSequenceLength, CosCache, SinCache],
            [context, GenAiDecoderLayout.PresentKey(layer), GenAiDecoderLayout.PresentValue(layer)],
            NodeAttribute.Int("num_heads", o.Heads),
            NodeAttribute.Int("kv_num_heads", o.KvHeads),
            NodeAttribute.Float("scale", (float)(1.0 / Math.Sqrt(o.HeadDim))),
            NodeAttribute.Int("do_rotary", 1),
            NodeAttribute.Int("rotary_interleaved", 0),
            NodeAttribute.Int("local_window_size", -1));
        return g.Op("MatMul", [context, DecoderWeights.Layer(layer, "self_attn.o_proj.weight")]);
    }
}
