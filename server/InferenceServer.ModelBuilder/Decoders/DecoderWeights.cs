using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>One weight tensor of a decoder: its initializer name, shape and values (row-major, FLOAT).</summary>
/// <param name="Name">Initializer name, Hugging Face's parameter name (projections are stored transposed, <c>[in, out]</c>, for MatMul).</param>
/// <param name="Dims">Shape.</param>
/// <param name="Values">Row-major values; written as FLOAT16 when the model is half precision.</param>
public sealed record DecoderTensor(string Name, long[] Dims, float[] Values);

/// <summary>
/// The deterministic random weights of a decoder (<see cref="DecoderOptions.Seed"/>), plus the rotary cos/sin tables.
/// Each tensor is drawn from its own stream (seed and name), so the layers' weights do not change when layers are added.
/// Scales keep every layer well-conditioned: embeddings have standard deviation 1, a projection with fan-in <c>n</c>
/// has <c>1/√n</c>, norm weights are <c>1 ± 0.1</c>; the logits come out with a standard deviation near 1.
/// </summary>
public sealed class DecoderWeights
{
    private readonly Dictionary<string, DecoderTensor> _byName = new(StringComparer.Ordinal);
    private readonly List<DecoderTensor> _ordered = [];

    /// <summary>Draws the weights of <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public DecoderWeights(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        int d = options.DModel;
        int qWidth = options.Heads * options.HeadDim;
        int kvWidth = options.KvHeads * options.HeadDim;
        int inter = options.IntermediateSize;

        Add(EmbedTokens, [options.Vocab, d], 0, 1);
        for (int i = 0; i < options.Layers; i++)
        {
            Add(Layer(i, "input_layernorm.weight"), [d], 1, 0.1 / Math.Sqrt(3));
            Add(Layer(i, "self_attn.q_proj.weight"), [d, qWidth], 0, 1 / Math.Sqrt(d));
            Add(Layer(i, "self_attn.k_proj.weight"), [d, kvWidth], 0, 1 / Math.Sqrt(d));
            Add(Layer(i, "self_attn.v_proj.weight"), [d, kvWidth], 0, 1 / Math.Sqrt(d));
            Add(Layer(i, "self_attn.o_proj.weight"), [qWidth, d], 0, 1 / Math.Sqrt(qWidth));
            Add(Layer(i, "post_attention_layernorm.weight"), [d], 1, 0.1 / Math.Sqrt(3));
            Add(Layer(i, "mlp.gate_proj.weight"), [d, inter], 0, 1 / Math.Sqrt(d));
            Add(Layer(i, "mlp.up_proj.weight"), [d, inter], 0, 1 / Math.Sqrt(d));
            Add(Layer(i, "mlp.down_proj.weight"), [inter, d], 0, 1 / Math.Sqrt(inter));
        }

        Add(FinalNorm, [d], 1, 0.1 / Math.Sqrt(3));
        Add(LmHead, [d, options.Vocab], 0, 1 / Math.Sqrt(d));
        (RopeCos, RopeSin) = RotaryTables(options);
    }

    /// <summary>Name of the token embedding, <c>[vocab, d_model]</c>.</summary>
    public const string EmbedTokens = "model.embed_tokens.weight";

    /// <summary>Name of the final norm's weight, <c>[d_model]</c>.</summary>
    public const string FinalNorm = "model.norm.weight";

    /// <summary>Name of the LM head, <c>[d_model, vocab]</c> (transposed for MatMul).</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>Name of the rotary cosine table, <c>[max_position_embeddings, head_dim]</c>.</summary>
    public const string RopeCosName = "model.rotary_emb.cos_cached";

    /// <summary>Name of the rotary sine table, <c>[max_position_embeddings, head_dim]</c>.</summary>
    public const string RopeSinName = "model.rotary_emb.sin_cached";

    /// <summary>The options the weights were drawn for.</summary>
    public DecoderOptions Options { get; }

    /// <summary>Every weight in graph order (the rotary tables not included).</summary>
    public IReadOnlyList<DecoderTensor> Tensors => _ordered;

    /// <summary>Rotary cosine table: row <c>p</c> is <c>cos(p·θ_k)</c> for <c>k</c> of the first half, repeated for the second half.</summary>
    public DecoderTensor RopeCos { get; }

    /// <summary>Rotary sine table, laid out as <see cref="RopeCos"/>.</summary>
    public DecoderTensor RopeSin { get; }

    /// <summary>The name of parameter <paramref name="suffix"/> of layer <paramref name="layer"/>, e.g. <c>model.layers.0.mlp.up_proj.weight</c>.</summary>
    public static string Layer(int layer, string suffix) =>
        string.Create(CultureInfo.InvariantCulture, $"model.layers.{layer}.{suffix}");

    /// <summary>The tensor named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public DecoderTensor this[string name] => _byName[name];

    private void Add(string name, long[] dims, double mean, double std)
    {
        int count = checked((int)OnnxTensor.ElementCountOf(dims));
        var tensor = new DecoderTensor(name, dims, new SeededUniform(Options.Seed, name).Fill(count, mean, std));
        _byName.Add(name, tensor);
        _ordered.Add(tensor);
    }

    private static (DecoderTensor Cos, DecoderTensor Sin) RotaryTables(DecoderOptions options)
    {
        int dim = options.HeadDim;
        int half = dim / 2;
        var cos = new float[options.MaxPositions * dim];
        var sin = new float[options.MaxPositions * dim];
        for (int p = 0; p < options.MaxPositions; p++)
        {
            for (int k = 0; k < half; k++)
            {
                double angle = p / Math.Pow(options.RopeTheta, 2.0 * k / dim);
                float c = (float)Math.Cos(angle);
                float s = (float)Math.Sin(angle);
                cos[p * dim + k] = c;
                cos[p * dim + k + half] = c;
                sin[p * dim + k] = s;
                sin[p * dim + k + half] = s;
            }
        }

        long[] dims = [options.MaxPositions, dim];
        return (new DecoderTensor(RopeCosName, dims, cos), new DecoderTensor(RopeSinName, dims, sin));
    }
}
