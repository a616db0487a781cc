namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// onnxruntime-genai's model-builder layout of a decoder-only model for the CPU (<see cref="GenAiDecoderGraph"/>):
/// inputs <c>input_ids</c>, <c>attention_mask</c>, then <c>past_key_values.{i}.key</c> and <c>.value</c> per layer (no
/// <c>position_ids</c>); outputs <c>logits</c>, then <c>present.{i}.key</c> and <c>.value</c>; KV tensors
/// <c>[batch_size, num_key_value_heads, length, head_dim]</c> as in <see cref="OptimumDecoderLayout"/>. Beside
/// <c>model.onnx</c> (and its external data <c>model.onnx.data</c>) the runtime reads <c>genai_config.json</c>
/// (<see cref="GenAiConfig"/>) and the tokenizer files.
/// </summary>
public static class GenAiDecoderLayout
{
    /// <summary>Token ids, INT64 <c>[batch_size, sequence_length]</c>.</summary>
    public const string InputIds = OptimumDecoderLayout.InputIds;

    /// <summary>INT64 <c>[batch_size, total_sequence_length]</c>; only each row's count of ones matters (see <see cref="GenAiDecoderGraph"/>).</summary>
    public const string AttentionMask = OptimumDecoderLayout.AttentionMask;

    /// <summary>Next-token logits of every position, <c>[batch_size, sequence_length, vocab]</c>.</summary>
    public const string Logits = OptimumDecoderLayout.Logits;

    /// <summary>Name of the model file.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>Name of the external-data file, as the model builder names it.</summary>
    public const string ExternalDataFileName = "model.onnx.data";

    /// <summary>Name of onnxruntime-genai's configuration file.</summary>
    public const string ConfigFileName = "genai_config.json";

    /// <summary>Dimension name of the cached plus the new tokens (attention mask, <c>present.*</c>).</summary>
    public const string TotalSequenceDim = "total_sequence_length";

    /// <summary>The past key input of layer <paramref name="layer"/>: <c>past_key_values.{layer}.key</c>.</summary>
    public static string PastKey(int layer) => OptimumDecoderLayout.PastKey(layer);

    /// <summary>The past value input of layer <paramref name="layer"/>: <c>past_key_values.{layer}.value</c>.</summary>
    public static string PastValue(int layer) => OptimumDecoderLayout.PastValue(layer);

    /// <summary>The present key output of layer <paramref name="layer"/>: <c>present.{layer}.key</c>.</summary>
    public static string PresentKey(int layer) => OptimumDecoderLayout.PresentKey(layer);

    /// <summary>The present value output of layer <paramref name="layer"/>: <c>present.{layer}.value</c>.</summary>
    public static string PresentValue(int layer) => OptimumDecoderLayout.PresentValue(layer);

    /// <summary>All output names in graph order for a model of <paramref name="layers"/> layers.</summary>
    public static IReadOnlyList<string> OutputNames(int layers) => OptimumDecoderLayout.OutputNames(layers);

    /// <summary>Declares the layout's graph inputs and outputs on <paramref name="builder"/>, in graph order.</summary>
    public static void Declare(OnnxGraphBuilder builder, OptimumDecoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(shape);
        var kind = shape.Precision.ElementKind();
        builder.Input(InputIds, TensorElementKind.Int64, OptimumDecoderLayout.BatchDim, OptimumDecoderLayout.SequenceDim)
            .Input(AttentionMask, TensorElementKind.Int64, OptimumDecoderLayout.BatchDim, TotalSequenceDim);
        for (int i = 0; i < shape.Layers; i++)
        {
            builder.Input(PastKey(i), kind, OptimumDecoderLayout.BatchDim, shape.KvHeads, OptimumDecoderLayout.PastSequenceDim, shape.HeadDim)
                .Input(PastValue(i), kind, OptimumDecoderLayout.BatchDim, shape.KvHeads, OptimumDecoderLayout.PastSequenceDim, shape.HeadDim);
        }

        builder.Output(Logits, kind, OptimumDecoderLayout.BatchDim, OptimumDecoderLayout.SequenceDim, shape.Vocab);
        for (int i = 0; i < shape.Layers; i++)
        {
            builder.Output(PresentKey(i), kind, OptimumDecoderLayout.BatchDim, shape.KvHeads, TotalSequenceDim, shape.HeadDim)
                .Output(PresentValue(i), kind, OptimumDecoderLayout.BatchDim, shape.KvHeads, TotalSequenceDim, shape.HeadDim);
        }
    }

    /// <summary>
    /// The contents of <c>genai_config.json</c> for <paramref name="options"/>, structured as the model builder writes it
    /// for the CPU: <c>model</c> (special ids, context length, vocabulary, <c>decoder</c> with the head counts and the
    /// input/output name templates) and <c>search</c> (greedy defaults; no shared past/present buffer).
    /// </summary>
    public static string GenAiConfig(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return HuggingFaceConfigFiles.Json(w =>
        {
            w.WriteStartObject("model");
            w.WriteNumber("bos_token_id", options.BosTokenId);
            w.WriteNumber("context_length", options.MaxPositions);
            w.WriteStartObject("decoder");
            w.WriteStartObject("session_options");
            w.WriteString("log_id", "onnxruntime-genai");
            w.WriteStartArray("provider_options");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteString("filename", ModelFileName);
            w.WriteNumber("head_size", options.HeadDim);
            w.WriteNumber("hidden_size", options.DModel);
            w.WriteStartObject("inputs");
            w.WriteString("input_ids", InputIds);
            w.WriteString("attention_mask", AttentionMask);
            w.WriteString("past_key_names", "past_key_values.%d.key");
            w.WriteString("past_value_names", "past_key_values.%d.value");
            w.WriteEndObject();
            w.WriteStartObject("outputs");
            w.WriteString("logits", Logits);
            w.WriteString("present_key_names", "present.%d.key");
            w.WriteString("present_value_names", "present.%d.value");
            w.WriteEndObject();
            w.WriteNumber("num_attention_heads", options.Heads);
            w.WriteNumber("num_hidden_layers", options.Layers);
            w.WriteNumber("num_key_value_heads", options.KvHeads);
            w.WriteEndObject();
            w.WriteNumber("eos_token_id", options.EosTokenId);
            w.WriteNumber("pad_token_id", options.PadTokenId);
            w.WriteString("type", "llama");
            w.WriteNumber("vocab_size", options.Vocab);
            w.WriteEndObject();
            w.WriteStartObject("search");
            w.WriteNumber("diversity_penalty", 0.0);
            w.WriteBoolean("do_sample", false);
            w.WriteBoolean("early_stopping", true);
            w.WriteNumber("length_penalty", 1.0);
            w.WriteNumber("max_length", options.MaxPositions);
            w.WriteNumber("min_length", 0);
            w.WriteNumber("no_repeat_ngram_size", 0);
            w.WriteNumber("num_beams", 1);
            w.WriteNumber("num_return_sequences", 1);
            w.WriteBoolean("past_present_share_buffer", false);
            w.WriteNumber("repetition_penalty", 1.0);
            w.WriteNumber("temperature", 1.0);
            w.WriteNumber("top_k", 1);
            w.WriteNumber("top_p", 1.0);
            w.WriteEndObject();
        });
    }
}
