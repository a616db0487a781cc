namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The names of the merged decoder older Hugging Face Optimum versions exported (<c>decoder_model_merged.onnx</c>,
/// <see cref="LegacyMergedDecoderGraph"/>): inputs <c>input_ids</c>, <c>attention_mask</c>, then
/// <c>past_key_values.{i}.key</c> and <c>.value</c> for each layer, then <c>use_cache_branch</c>; <b>no</b>
/// <c>position_ids</c>; outputs <c>logits</c>, then <c>present.{i}.key</c> and <c>.value</c>. Shapes and the other names
/// are those of <see cref="OptimumDecoderLayout"/>.
/// <para>
/// What a caller feeds. Every call: <c>input_ids</c> INT64 <c>[batch, new]</c> and <c>attention_mask</c> INT64
/// <c>[batch, past + new]</c> (1 = token, 0 = padding), where <c>past</c> is the length of the past tensors fed.
/// </para>
/// <list type="bullet">
/// <item>First step: <c>use_cache_branch = [false]</c> (BOOL, shape <c>[1]</c>) and every
/// <c>past_key_values.{i}.key/value</c> empty, <c>[batch, kv_heads, 0, head_dim]</c> of the cache type (ONNX Runtime
/// accepts zero-length tensors, so no dummy length-1 past is needed); <c>attention_mask</c> is then <c>[batch, new]</c>.
/// This branch never reads the past tensors (their length and contents make no difference, as long as
/// <c>attention_mask</c> covers the new tokens only).</item>
/// <item>Later steps: <c>use_cache_branch = [true]</c>, each past input the <c>present.{i}.key/value</c> the previous
/// call returned, and <c>attention_mask</c> extended by the new tokens.</item>
/// </list>
/// <para>
/// Positions are not an input: the graph gives the new tokens positions <c>past + 0 … past + new − 1</c>, the same for
/// every row, as <c>transformers</c> did when <c>position_ids</c> was not given (with <c>past = 0</c> on the first
/// step). A left-padded row's positions therefore count its padding; rotary attention depends on distances only, so
/// such a row still computes what it would alone. But every row's cache must have been built at the batch's columns
/// from its first call: a sequence prefilled elsewhere cannot join a running batch with a left-padded cache (its
/// cached keys were rotated at positions counted from its own start, the graph would place its new tokens at the
/// batch's length). The current layout, where the caller gives each row its own positions, has no such limit.
/// </para>
/// </summary>
public static class LegacyOptimumDecoderLayout
{
    /// <summary>The switch between the graph's branches, BOOL <c>[1]</c>: false on a sequence's first call, true after.</summary>
    public const string UseCacheBranch = "use_cache_branch";

    /// <summary>Name of the model file inside the model directory.</summary>
    public const string ModelFileName = "decoder_model_merged.onnx";

    /// <summary>Name of the external-data file beside <see cref="ModelFileName"/> when the weights are kept outside.</summary>
    public const string ExternalDataFileName = "decoder_model_merged.onnx_data";

    /// <summary>
    /// Declares the layout's graph inputs and outputs on <paramref name="builder"/>, in graph order: those of
    /// <see cref="OptimumDecoderLayout"/> without <c>position_ids</c>, then <see cref="UseCacheBranch"/>.
    /// </summary>
    public static void Declare(OnnxGraphBuilder builder, OptimumDecoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(shape);
        OptimumDecoderLayout.DeclareInputs(builder, shape, positionIds: false);
        builder.Input(UseCacheBranch, TensorElementKind.Bool, 1);
        OptimumDecoderLayout.DeclareOutputs(builder, shape, OutputNames(shape.Layers));
    }

    /// <summary>All input names in graph order for a model of <paramref name="layers"/> layers.</summary>
    public static IReadOnlyList<string> InputNames(int layers) =>
        [.. OptimumDecoderLayout.InputNames(layers).Where(name => name != OptimumDecoderLayout.PositionIds), UseCacheBranch];

    /// <summary>All output names in graph order for a model of <paramref name="layers"/> layers (those of <see cref="OptimumDecoderLayout"/>).</summary>
    public static IReadOnlyList<string> OutputNames(int layers) => OptimumDecoderLayout.OutputNames(layers);
}
