using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The names of Hugging Face Optimum's <c>text-generation-with-past</c> ONNX layout of a decoder-only model:
/// inputs <c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c>, then <c>past_key_values.{i}.key</c> and
/// <c>.value</c> for each layer; outputs <c>logits</c>, then <c>present.{i}.key</c> and <c>.value</c>. KV tensors are
/// <c>[batch_size, num_key_value_heads, length, head_dim]</c>; an empty past (length 0) is the first step.
/// </summary>
public static class OptimumDecoderLayout
{
    /// <summary>Token ids, INT64 <c>[batch_size, sequence_length]</c>.</summary>
    public const string InputIds = "input_ids";

    /// <summary>1 for a real token, 0 for padding, INT64 <c>[batch_size, past_sequence_length + sequence_length]</c>.</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>Each token's position (the row of the rotary or learned position table), INT64 <c>[batch_size, sequence_length]</c>.</summary>
    public const string PositionIds = "position_ids";

    /// <summary>Next-token logits of every position, <c>[batch_size, sequence_length, vocab]</c>.</summary>
    public const string Logits = "logits";

    /// <summary>Dimension name of the batch.</summary>
    public const string BatchDim = "batch_size";

    /// <summary>Dimension name of the new tokens of a call.</summary>
    public const string SequenceDim = "sequence_length";

    /// <summary>Dimension name of the cached tokens given to a call.</summary>
    public const string PastSequenceDim = "past_sequence_length";

    /// <summary>Dimension name of the cached plus the new tokens (attention mask, <c>present.*</c>).</summary>
    public const string TotalSequenceDim = "past_sequence_length + sequence_length";

    /// <summary>Name of the model file inside the model directory.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>Name of the external-data file beside <see cref="ModelFileName"/> when the weights are kept outside.</summary>
    public const string ExternalDataFileName = "model.onnx_data";

    /// <summary>The past key input of layer <paramref name="layer"/>: <c>past_key_values.{layer}.key</c>.</summary>
    public static string PastKey(int layer) => string.Create(CultureInfo.InvariantCulture, $"past_key_values.{layer}.key");

    /// <summary>The past value input of layer <paramref name="layer"/>: <c>past_key_values.{layer}.value</c>.</summary>
    public static string PastValue(int layer) => string.Create(CultureInfo.InvariantCulture, $"past_key_values.{layer}.value");

    /// <summary>The present key output of layer <paramref name="layer"/>: <c>present.{layer}.key</c>.</summary>
    public static string PresentKey(int layer) => string.Create(CultureInfo.InvariantCulture, $"present.{layer}.key");

    /// <summary>The present value output of layer <paramref name="layer"/>: <c>present.{layer}.value</c>.</summary>
    public static string PresentValue(int layer) => string.Create(CultureInfo.InvariantCulture, $"present.{layer}.value");

    /// <summary>
    /// Declares the layout's graph inputs and outputs on <paramref name="builder"/>, in graph order, with the symbolic
    /// dimensions above and the fixed ones of <paramref name="shape"/>.
    /// </summary>
    public static void Declare(OnnxGraphBuilder builder, OptimumDecoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        DeclareInputs(builder, shape, positionIds: true);
        DeclareOutputs(builder, shape, OutputNames(shape.Layers));
    }

    /// <summary>
    /// Declares <c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c> (unless <paramref name="positionIds"/> is
    /// false, as in <see cref="LegacyOptimumDecoderLayout"/>), then each layer's <c>past_key_values.{i}.key/value</c>
    /// <c>[batch_size, kv_heads, past_sequence_length, head_dim]</c>.
    /// </summary>
    public static void DeclareInputs(OnnxGraphBuilder builder, OptimumDecoderShape shape, bool positionIds)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(shape);
        var kind = shape.Precision.ElementKind();
        builder.Input(InputIds, TensorElementKind.Int64, BatchDim, SequenceDim)
            .Input(AttentionMask, TensorElementKind.Int64, BatchDim, TotalSequenceDim);
        if (positionIds)
        {
            builder.Input(PositionIds, TensorElementKind.Int64, BatchDim, SequenceDim);
        }

        for (int i = 0; i < shape.Layers; i++)
        {
            builder.Input(PastKey(i), kind, BatchDim, shape.KvHeads, PastSequenceDim, shape.HeadDim)
                .Input(PastValue(i), kind, BatchDim, shape.KvHeads, PastSequenceDim, shape.HeadDim);
        }
    }

    /// <summary>
    /// Declares the outputs <paramref name="names"/> in the layout's order (<see cref="OutputNames"/>, or a subgraph's
    /// own names for them): the logits <c>[batch_size, sequence_length, vocab]</c>, then each layer's present key and
    /// value <c>[batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]</c>.
    /// </summary>
    public static void DeclareOutputs(OnnxGraphBuilder builder, OptimumDecoderShape shape, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(names);
        var kind = shape.Precision.ElementKind();
        builder.Output(names[0], kind, BatchDim, SequenceDim, shape.Vocab);
        foreach (string present in names.Skip(1))
        {
            builder.Output(present, kind, BatchDim, shape.KvHeads, TotalSequenceDim, shape.HeadDim);
        }
    }

    /// <summary>All input names in graph order for a model of <paramref name="layers"/> layers.</summary>
    public static IReadOnlyList<string> InputNames(int layers)
    {
        var names = new List<string> { InputIds, AttentionMask, PositionIds };
        for (int i = 0; i < layers; i++)
        {
            names.Add(PastKey(i));
            names.Add(PastValue(i));
        }

        return names;
    }

    /// <summary>All output names in graph order for a model of <paramref name="layers"/> layers.</summary>
    public static IReadOnlyList<string> OutputNames(int layers)
    {
        var names = new List<string> { Logits };
        for (int i = 0; i < layers; i++)
        {
            names.Add(PresentKey(i));
            names.Add(PresentValue(i));
        }

        return names;
    }
}
