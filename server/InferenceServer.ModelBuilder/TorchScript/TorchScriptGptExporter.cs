using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>
/// Writes a <see cref="TorchScriptGpt"/> as an Optimum <c>text-generation-with-past</c> model directory:
/// <c>model.onnx</c> (<see cref="TorchScriptGptGraph"/>, weights inside), <c>config.json</c> and
/// <c>generation_config.json</c>. Deterministic: the same archive always gives the same bytes.
/// </summary>
public static class TorchScriptGptExporter
{
    /// <summary>Reads the archive at <paramref name="archivePath"/> and writes <paramref name="directory"/> (created if missing); returns the paths written.</summary>
    /// <exception cref="InvalidDataException">The file is not a TorchScript archive of a <see cref="TorchScriptGpt"/>.</exception>
    public static IReadOnlyList<string> Write(string archivePath, string directory) => Write(TorchScriptGpt.Load(archivePath), directory);

    /// <summary>Writes <paramref name="model"/> to <paramref name="directory"/> (created if missing); returns the paths written.</summary>
    public static IReadOnlyList<string> Write(TorchScriptGpt model, string directory)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        string modelPath = Path.Combine(directory, OptimumDecoderLayout.ModelFileName);
        File.WriteAllBytes(modelPath, TorchScriptGptGraph.Build(model).ToModelBytes());
        // A data file left by an earlier external-data model in this directory would be mistaken for this model's.
        File.Delete(Path.Combine(directory, OptimumDecoderLayout.ExternalDataFileName));
        string configPath = Path.Combine(directory, HuggingFaceConfigFiles.ConfigFileName);
        File.WriteAllText(configPath, Config(model));
        string generationPath = Path.Combine(directory, HuggingFaceConfigFiles.GenerationConfigFileName);
        File.WriteAllText(generationPath, GenerationConfig(model));
        return [modelPath, configPath, generationPath];
    }

    /// <summary>
    /// <c>config.json</c> in GPT-2's vocabulary (<c>model_type</c> <c>gpt2</c>: <c>n_layer</c>, <c>n_head</c>,
    /// <c>n_embd</c>, <c>n_inner</c>, <c>n_positions</c>, also as <c>max_position_embeddings</c>), so readers of Hugging
    /// Face configurations find the shape and the context. The block is not GPT-2's (see <see cref="GptBlock"/>), so
    /// <c>architectures</c> names the archive's class rather than <c>GPT2LMHeadModel</c>: the graph is the model.
    /// </summary>
    public static string Config(TorchScriptGpt model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return HuggingFaceConfigFiles.Json(w =>
        {
            w.WriteStartArray("architectures");
            w.WriteStringValue(model.ClassName[(model.ClassName.LastIndexOf('.') + 1)..]);
            w.WriteEndArray();
            w.WriteString("activation_function", "gelu");
            w.WriteNumber("layer_norm_epsilon", (double)(decimal)model.LayerNormEps);
            w.WriteNumber("max_position_embeddings", model.Context);
            w.WriteString("model_type", "gpt2");
            w.WriteNumber("n_embd", model.Width);
            w.WriteNumber("n_head", model.Heads);
            w.WriteNumber("n_inner", model.Inner);
            w.WriteNumber("n_layer", model.Blocks.Count);
            w.WriteNumber("n_positions", model.Context);
            w.WriteBoolean("tie_word_embeddings", model.TiedEmbeddings);
            w.WriteString("torch_dtype", DecoderPrecision.Float32.TorchDtype());
            w.WriteBoolean("use_cache", true);
            w.WriteNumber("vocab_size", model.Vocab);
        });
    }

    /// <summary>
    /// <c>generation_config.json</c>: <c>max_length</c> is the context (the position table's rows); the vocabulary has
    /// no special tokens, so there is no BOS or EOS, and <c>pad_token_id</c> is 0, the id a window decoder pads with
    /// (padding is masked by <c>attention_mask</c>, so its id does not change any real position's logits).
    /// </summary>
    public static string GenerationConfig(TorchScriptGpt model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return HuggingFaceConfigFiles.Json(w =>
        {
            w.WriteNumber("max_length", model.Context);
            w.WriteNumber("pad_token_id", 0);
        });
    }
}
