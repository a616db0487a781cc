namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The ONNX graph of a Llama-style decoder as older Optimum versions merged it (<see cref="LegacyOptimumDecoderLayout"/>):
/// one <c>If</c> node on <c>use_cache_branch</c> whose branches are each a whole <see cref="DecoderPass"/> with the
/// same weights (initializers of the main graph, seen by both branches as outer-scope values).
/// <list type="bullet">
/// <item><c>then_branch</c> (<see cref="WithPastBranch"/>): reads the past; positions <c>past + 0 … past + new − 1</c>,
/// <c>past</c> being the length axis of <c>past_key_values.0.key</c>; presents are Concat(past, new).</item>
/// <item><c>else_branch</c> (<see cref="NoPastBranch"/>): never reads the past inputs; positions <c>0 … new − 1</c>;
/// presents are the new tokens' keys and values.</item>
/// </list>
/// Both branches output the logits and every present (under names of their own; the <c>If</c> node's outputs carry the
/// layout's names). The maths equals <see cref="DecoderGraph"/> fed those positions.
/// </summary>
public static class LegacyMergedDecoderGraph
{
    /// <summary>Name of the <c>then_branch</c> subgraph, run when <c>use_cache_branch</c> is true.</summary>
    public const string WithPastBranch = "with_past";

    /// <summary>Name of the <c>else_branch</c> subgraph, run when <c>use_cache_branch</c> is false.</summary>
    public const string NoPastBranch = "no_past";

    /// <summary>Builds the graph of <paramref name="weights"/> (weights inside the model; see <see cref="OnnxExternalData"/>).</summary>
    public static OnnxGraphBuilder Build(DecoderWeights weights)
    {
        var (builder, g) = DecoderGraph.Start(weights, "merged", "older Optimum's merged layout (decoder_model_merged.onnx, use_cache_branch)");
        var o = weights.Options;
        LegacyOptimumDecoderLayout.Declare(builder, o.Shape);

        var withPast = Branch(g, o, WithPastBranch, readsPast: true);
        var noPast = Branch(g, o, NoPastBranch, readsPast: false);
        var outputs = LegacyOptimumDecoderLayout.OutputNames(o.Layers);
        builder.Node(
            "If",
            [LegacyOptimumDecoderLayout.UseCacheBranch],
            [.. outputs],
            NodeAttribute.Graph("then_branch", withPast),
            NodeAttribute.Graph("else_branch", noPast));
        return builder;
    }

    /// <summary>A branch: the counted positions, then the pass, its results named <c>{branch}/logits</c>, <c>{branch}/present.{i}.key</c>, ….</summary>
    private static OnnxGraphBuilder Branch(GraphEmitter model, DecoderOptions o, string name, bool readsPast)
    {
        var g = model.Subgraph(name);
        var values = new DecoderPassValues
        {
            Positions = CountedPositions(g, readsPast),
            ReadsPast = readsPast,
            Logits = $"{name}/{OptimumDecoderLayout.Logits}",
            PresentKey = i => $"{name}/{OptimumDecoderLayout.PresentKey(i)}",
            PresentValue = i => $"{name}/{OptimumDecoderLayout.PresentValue(i)}",
        };
        DecoderPass.Emit(g, o, values);
        OptimumDecoderLayout.DeclareOutputs(g.Builder, o.Shape, values.OutputNames(o.Layers));
        return g.Builder;
    }

    /// <summary>
    /// INT64 <c>[1, sequence_length]</c>: <c>past + 0 … past + sequence_length − 1</c>, <c>past</c> being the length axis
    /// of <c>past_key_values.0.key</c> when the branch reads the past, else 0.
    /// </summary>
    private static string CountedPositions(GraphEmitter g, bool readsPast)
    {
        g.Scope = "/model/positions";
        string one = g.Int64Scalar(1);
        string sequence = g.Op("Gather", [g.Op("Shape", [OptimumDecoderLayout.InputIds]), one]);
        string start = readsPast
            ? g.Op("Gather", [g.Op("Shape", [OptimumDecoderLayout.PastKey(0)]), g.Int64Scalar(2)])
            : g.Int64Scalar(0);
        string end = readsPast ? g.Op("Add", [start, sequence]) : sequence;
        return g.Op("Unsqueeze", [g.Op("Range", [start, end, one]), g.Int64s(0)]);
    }
}
