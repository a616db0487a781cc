namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The ONNX graph of a Llama-style decoder in Optimum's current <c>text-generation-with-past</c> layout
/// (<see cref="OptimumDecoderLayout"/>): one <see cref="DecoderPass"/> over the inputs, reading the past and returning
/// the present. Position ids come only from the caller (they need not start at 0 or follow the columns). Also the
/// parts every layout's graph shares: the weights as initializers and the declared past inputs and outputs.
/// </summary>
public static class DecoderGraph
{
    /// <summary>The operator set the graph is written against.</summary>
    public const int Opset = 17;

    /// <summary>The additive score of a masked (causal-future or padded) key.</summary>
    public const float MaskedScore = -1e9f;

    /// <summary>Builds the graph of <paramref name="weights"/> (weights inside the model; see <see cref="OnnxExternalData"/>).</summary>
    public static OnnxGraphBuilder Build(DecoderWeights weights)
    {
        var (builder, g) = Start(weights, "decoder", "Optimum's text-generation-with-past layout");
        var o = weights.Options;
        const string batch = OptimumDecoderLayout.BatchDim;
        builder.Input(OptimumDecoderLayout.InputIds, TensorElementKind.Int64, batch, OptimumDecoderLayout.SequenceDim)
            .Input(OptimumDecoderLayout.AttentionMask, TensorElementKind.Int64, batch, OptimumDecoderLayout.TotalSequenceDim)
            .Input(OptimumDecoderLayout.PositionIds, TensorElementKind.Int64, batch, OptimumDecoderLayout.SequenceDim);
        DeclarePastInputs(builder, o);

        var values = new DecoderPassValues
        {
            Positions = OptimumDecoderLayout.PositionIds,
            ReadsPast = true,
            Logits = OptimumDecoderLayout.Logits,
            PresentKey = OptimumDecoderLayout.PresentKey,
            PresentValue = OptimumDecoderLayout.PresentValue,
        };
        DecoderPass.Emit(g, o, values);
        DeclareOutputs(builder, o, values.OutputNames(o.Layers));
        return builder;
    }

    /// <summary>A model named <paramref name="graphName"/> holding the weights (and rotary tables) as initializers, and an emitter into it.</summary>
    internal static (OnnxGraphBuilder Builder, GraphEmitter Emitter) Start(DecoderWeights weights, string graphName, string layout)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var o = weights.Options;
        var builder = new OnnxGraphBuilder(graphName, Opset)
            .DocString($"Llama-style decoder-only language model with deterministic random weights (seed {o.Seed}), written by InferenceServer.ModelBuilder in {layout}.");
        foreach (var tensor in weights.Tensors.Append(weights.RopeCos).Append(weights.RopeSin))
        {
            builder.Initializer(ToInitializer(tensor, o.Precision));
        }

        return (builder, new GraphEmitter(builder));
    }

    /// <summary>Declares <c>past_key_values.{i}.key/value</c>, <c>[batch_size, kv_heads, past_sequence_length, head_dim]</c>, for every layer.</summary>
    internal static void DeclarePastInputs(OnnxGraphBuilder builder, DecoderOptions o)
    {
        var kind = o.Precision.ElementKind();
        for (int i = 0; i < o.Layers; i++)
        {
            builder.Input(OptimumDecoderLayout.PastKey(i), kind, OptimumDecoderLayout.BatchDim, o.KvHeads, OptimumDecoderLayout.PastSequenceDim, o.HeadDim)
                .Input(OptimumDecoderLayout.PastValue(i), kind, OptimumDecoderLayout.BatchDim, o.KvHeads, OptimumDecoderLayout.PastSequenceDim, o.HeadDim);
        }
    }

    /// <summary>
    /// Declares the outputs <paramref name="names"/>, in the layout's order: the logits <c>[batch_size, sequence_length, vocab]</c>,
    /// then each layer's present key and value <c>[batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]</c>.
    /// </summary>
    internal static void DeclareOutputs(OnnxGraphBuilder builder, DecoderOptions o, IReadOnlyList<string> names)
    {
        var kind = o.Precision.ElementKind();
        const string batch = OptimumDecoderLayout.BatchDim;
        builder.Output(names[0], kind, batch, OptimumDecoderLayout.SequenceDim, o.Vocab);
        foreach (string present in names.Skip(1))
        {
            builder.Output(present, kind, batch, o.KvHeads, OptimumDecoderLayout.TotalSequenceDim, o.HeadDim);
        }
    }

    private static OnnxTensor ToInitializer(DecoderTensor tensor, DecoderPrecision precision) => precision switch
    {
        DecoderPrecision.Float32 => OnnxTensor.Create<float>(tensor.Name, tensor.Dims, tensor.Values),
        DecoderPrecision.Float16 => OnnxTensor.Create<Half>(tensor.Name, tensor.Dims, tensor.Values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Not a decoder precision."),
    };
}
