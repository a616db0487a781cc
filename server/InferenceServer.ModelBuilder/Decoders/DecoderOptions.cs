namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The shape and numbers of a Llama-style decoder-only language model written by <see cref="DecoderModelWriter"/>.
/// The defaults make a tiny model (2 layers, width 64, 4 query heads sharing 2 KV heads, vocabulary 512) with its
/// tokenizer files, laid out as Optimum writes it.
/// </summary>
public sealed record DecoderOptions
{
    /// <summary>Number of transformer layers (<c>num_hidden_layers</c>).</summary>
    public int Layers { get; init; } = 2;

    /// <summary>Width of the residual stream (<c>hidden_size</c>); a multiple of <see cref="Heads"/>.</summary>
    public int DModel { get; init; } = 64;

    /// <summary>Number of query heads (<c>num_attention_heads</c>).</summary>
    public int Heads { get; init; } = 4;

    /// <summary>
    /// Number of key/value heads (<c>num_key_value_heads</c>); divides <see cref="Heads"/>. Fewer than
    /// <see cref="Heads"/> is grouped-query attention: KV head <c>j</c> serves query heads
    /// <c>j·G … j·G + G − 1</c> with <c>G = Heads / KvHeads</c>.
    /// </summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>
    /// Vocabulary size (<c>vocab_size</c>): rows of the embedding, columns of the logits. With <see cref="Tokenizer"/>
    /// at least 256 plus the number of distinct special ids.
    /// </summary>
    public int Vocab { get; init; } = 512;

    /// <summary>Width of the SiLU-gated MLP (<c>intermediate_size</c>); 0 means <c>2 × DModel</c>.</summary>
    public int Intermediate { get; init; }

    /// <summary>Rows of the rotary cos/sin tables (<c>max_position_embeddings</c>): position ids must be below it.</summary>
    public int MaxPositions { get; init; } = 256;

    /// <summary>Base of the rotary frequencies (<c>rope_theta</c>).</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Epsilon of the RMS norms (<c>rms_norm_eps</c>).</summary>
    public float RmsNormEps { get; init; } = 1e-5f;

    /// <summary>Seed of the weights: the same options always give the same weights and the same bytes.</summary>
    public ulong Seed { get; init; } = 18;

    /// <summary>Weight, activation, KV-cache and logits type.</summary>
    public DecoderPrecision Precision { get; init; } = DecoderPrecision.Float32;

    /// <summary>
    /// Whether the weights go into <c>model.onnx_data</c> beside <c>model.onnx</c> (ONNX external data, as Optimum
    /// writes models over 2 GB) instead of into the model file.
    /// </summary>
    public bool ExternalData { get; init; }

    /// <summary>
    /// Whether the model is written as older Optimum versions merged it (<see cref="LegacyMergedDecoderGraph"/>,
    /// <c>decoder_model_merged.onnx</c>: <c>use_cache_branch</c>, no <c>position_ids</c>) instead of in the current
    /// <c>text-generation-with-past</c> layout (<see cref="DecoderGraph"/>, <c>model.onnx</c>). Same weights and maths.
    /// </summary>
    public bool LegacyMerged { get; init; }

    /// <summary>
    /// Whether <see cref="DecoderModelWriter.Write"/> writes the tokenizer files (<c>tokenizer.json</c>,
    /// <c>tokenizer_config.json</c>: <see cref="HuggingFaceTokenizerFiles"/>), which need a vocabulary of at least 256
    /// byte tokens plus the special tokens.
    /// </summary>
    public bool Tokenizer { get; init; } = true;

    /// <summary>
    /// Where the writer puts the graph: beside the JSON files (<see cref="DecoderLayout.Root"/>) or under <c>onnx/</c>,
    /// or whether it writes onnxruntime-genai's layout instead (<see cref="DecoderLayout.GenAi"/>).
    /// </summary>
    public DecoderLayout Layout { get; init; } = DecoderLayout.Root;

    /// <summary>Id of the beginning-of-sequence token (<c>bos_token_id</c>).</summary>
    public int BosTokenId { get; init; } = 1;

    /// <summary>Id of the end-of-sequence token (<c>eos_token_id</c>).</summary>
    public int EosTokenId { get; init; } = 2;

    /// <summary>Id of the padding token (<c>pad_token_id</c> of <c>generation_config.json</c>).</summary>
    public int PadTokenId { get; init; }

    /// <summary>Width of one head: <c>DModel / Heads</c>.</summary>
    public int HeadDim => DModel / Heads;

    /// <summary>The MLP width in effect: <see cref="Intermediate"/>, or <c>2 × DModel</c> when that is 0.</summary>
    public int IntermediateSize => Intermediate > 0 ? Intermediate : 2 * DModel;

    /// <summary>Query heads per KV head: <c>Heads / KvHeads</c>.</summary>
    public int QueryGroupSize => Heads / KvHeads;

    /// <summary>The shapes of the model's Optimum inputs and outputs.</summary>
    public OptimumDecoderShape Shape => new(Layers, KvHeads, HeadDim, Vocab, Precision);

    /// <summary>Checks that the numbers make a model.</summary>
    /// <exception cref="ArgumentException">A number is out of range or the head counts do not divide.</exception>
    public void Validate()
    {
        Positive(Layers, nameof(Layers));
        Positive(DModel, nameof(DModel));
        Positive(Heads, nameof(Heads));
        Positive(KvHeads, nameof(KvHeads));
        Positive(Vocab, nameof(Vocab));
        Positive(MaxPositions, nameof(MaxPositions));
        if (Intermediate < 0)
        {
            throw new ArgumentException($"{nameof(Intermediate)} must be 0 (default) or positive, not {Intermediate}.");
        }

        if (DModel % Heads != 0)
        {
            throw new ArgumentException($"{nameof(DModel)} {DModel} is not a multiple of {nameof(Heads)} {Heads}.");
        }

        if (HeadDim % 2 != 0)
        {
            throw new ArgumentException($"The head width {HeadDim} (DModel / Heads) must be even for rotary embeddings.");
        }

        if (Heads % KvHeads != 0)
        {
            throw new ArgumentException($"{nameof(KvHeads)} {KvHeads} does not divide {nameof(Heads)} {Heads}.");
        }

        if (!(RopeTheta > 1) || double.IsInfinity(RopeTheta))
        {
            throw new ArgumentException($"{nameof(RopeTheta)} must be a finite number above 1, not {RopeTheta}.");
        }

        if (!(RmsNormEps > 0) || float.IsInfinity(RmsNormEps))
        {
            throw new ArgumentException($"{nameof(RmsNormEps)} must be a finite positive number, not {RmsNormEps}.");
        }

        foreach (var (id, name) in new[] { (BosTokenId, nameof(BosTokenId)), (EosTokenId, nameof(EosTokenId)), (PadTokenId, nameof(PadTokenId)) })
        {
            if (id < 0 || id >= Vocab)
            {
                throw new ArgumentException($"{name} {id} is outside the vocabulary [0, {Vocab}).");
            }
        }

        _ = Precision.ElementKind();
        if (!Enum.IsDefined(Layout))
        {
            throw new ArgumentException($"{nameof(Layout)} {Layout} is not a layout.");
        }

        if (Layout == DecoderLayout.GenAi && LegacyMerged)
        {
            throw new ArgumentException("The genai layout has no legacy merged form.");
        }
    }

    private static void Positive(int value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentException($"{name} must be positive, not {value}.");
        }
    }
}
