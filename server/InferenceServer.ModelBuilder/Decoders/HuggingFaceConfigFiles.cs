using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The Hugging Face files an Optimum export carries beside the graph: <c>config.json</c> (the architecture, as
/// <c>transformers</c>' <c>LlamaConfig</c> names it) and <c>generation_config.json</c> (special token ids). The
/// tokenizer files are <see cref="HuggingFaceTokenizerFiles"/>.
/// </summary>
public static class HuggingFaceConfigFiles
{
    /// <summary>File name of the model configuration.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>File name of the generation defaults.</summary>
    public const string GenerationConfigFileName = "generation_config.json";

    /// <summary>The contents of <c>config.json</c> for <paramref name="options"/>: UTF-8, indented, ending in a newline.</summary>
    public static string Config(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return Json(w =>
        {
            w.WriteStartArray("architectures");
            w.WriteStringValue("LlamaForCausalLM");
            w.WriteEndArray();
            w.WriteBoolean("attention_bias", false);
            w.WriteNumber("attention_dropout", 0.0);
            w.WriteNumber("bos_token_id", options.BosTokenId);
            w.WriteNumber("eos_token_id", options.EosTokenId);
            w.WriteNumber("head_dim", options.HeadDim);
            w.WriteString("hidden_act", "silu");
            w.WriteNumber("hidden_size", options.DModel);
            w.WriteNumber("intermediate_size", options.IntermediateSize);
            w.WriteNumber("max_position_embeddings", options.MaxPositions);
            w.WriteBoolean("mlp_bias", false);
            w.WriteString("model_type", "llama");
            w.WriteNumber("num_attention_heads", options.Heads);
            w.WriteNumber("num_hidden_layers", options.Layers);
            w.WriteNumber("num_key_value_heads", options.KvHeads);
            w.WriteNumber("pad_token_id", options.PadTokenId);
            w.WriteNumber("rms_norm_eps", (double)(decimal)options.RmsNormEps);
            w.WriteNull("rope_scaling");
            w.WriteNumber("rope_theta", options.RopeTheta);
            w.WriteBoolean("tie_word_embeddings", false);
            w.WriteString("torch_dtype", options.Precision.TorchDtype());
            w.WriteBoolean("use_cache", true);
            w.WriteNumber("vocab_size", options.Vocab);
        });
    }

    /// <summary>The contents of <c>generation_config.json</c> for <paramref name="options"/>.</summary>
    public static string GenerationConfig(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return Json(w =>
        {
            w.WriteNumber("bos_token_id", options.BosTokenId);
            w.WriteNumber("eos_token_id", options.EosTokenId);
            w.WriteNumber("pad_token_id", options.PadTokenId);
        });
    }

    /// <summary>
    /// A JSON object written by <paramref name="body"/>: UTF-8, indented with <c>\n</c> line ends, ending in a newline,
    /// with characters such as <c>&lt;</c> and non-ASCII ones written as themselves (as Python's
    /// <c>json.dump(..., ensure_ascii=False)</c> does).
    /// </summary>
    internal static string Json(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, NewLine = "\n", Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }
}
