namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The ONNX graph of a Llama-style decoder in Optimum's current <c>text-generation-with-past</c> layout
/// (<see cref="OptimumDecoderLayout"/>): one <see cref="DecoderPass"/> over the inputs, reading the past and returning
/// the present. Position ids come only from the caller (they need not start at 0 or follow the columns). Also what
/// every layout's graph of the Llama decoder starts with: the weights as initializers (<see cref="Start"/>).
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
        var (builder, g) = Start(weights, "decoder", "Optimum's text-generation-with-past layout");
        var o = weights.Options;
        OptimumDecoderLayout.Declare(builder, o.Shape);
        DecoderPass.Emit(g, o, new DecoderPassValues
        {
            Positions = OptimumDecoderLayout.PositionIds,
            ReadsPast = true,
            Logits = OptimumDecoderLayout.Logits,
            PresentKey = OptimumDecoderLayout.PresentKey,
            PresentValue = OptimumDecoderLayout.PresentValue,
        });
        return builder;
    }

    /// <summary>
    /// A model named <paramref name="graphName"/> holding the weights (and, with <paramref name="rotaryTables"/>, the
    /// full-width rotary tables) as initializers, and an emitter into it.
    /// </summary>
    internal static (OnnxGraphBuilder Builder, GraphEmitter Emitter) Start(DecoderWeights weights, string graphName, string layout, bool rotaryTables = true)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var o = weights.Options;
        var builder = new OnnxGraphBuilder(graphName, Opset)
            .DocString($"Llama-style decoder-only language model with deterministic random weights (seed {o.Seed}), written by InferenceServer.ModelBuilder in {layout}.");
        var tensors = rotaryTables ? weights.Tensors.Append(weights.RopeCos).Append(weights.RopeSin) : weights.Tensors;
        foreach (var tensor in tensors)
        {
            builder.Initializer(ToInitializer(tensor, o.Precision));
        }

        return (builder, new GraphEmitter(builder));
    }

    internal static OnnxTensor ToInitializer(DecoderTensor tensor, DecoderPrecision precision) => precision switch
    {
        DecoderPrecision.Float32 => OnnxTensor.Create<float>(tensor.Name, tensor.Dims, tensor.Values),
        DecoderPrecision.Float16 => OnnxTensor.Create<Half>(tensor.Name, tensor.Dims, tensor.Values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Not a decoder precision."),
    };
}
