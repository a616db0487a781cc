using System.Text.Json;

namespace InferenceServer.Configuration.HuggingFace;

/// <summary>
/// The configuration a Hugging Face export (<c>optimum-cli export onnx</c>, or a hub repository such as onnx-community's)
/// carries in its version directory: <c>generation_config.json</c>, <c>config.json</c>, <c>tokenizer_config.json</c> and
/// <c>tokenizer.json</c>, read into <see cref="ConfigLayer"/>s of the <c>generation</c> section that rank below the model's
/// <c>config.yaml</c>. See docs/model-repository.md, "Hugging Face / Optimum exports".
/// </summary>
/// <remarks>
/// What is read, each layer named by the file its values come from:
/// <list type="bullet">
/// <item><c>generation_config.json</c>: <c>eos_token_id</c> (an id or a list) → <c>generation.stop_token_ids</c> (all of
/// them); <c>pad_token_id</c> → <c>generation.pad_token_id</c>.</item>
/// <item><c>config.json</c>: <c>max_position_embeddings</c> (GPT-2: <c>n_positions</c>) → <c>generation.max_model_len</c>;
/// its <c>eos_token_id</c> and <c>pad_token_id</c> where <c>generation_config.json</c> has none.</item>
/// <item><c>genai_config.json</c> (onnxruntime-genai's builder writes it instead of config.json; it ranks first):
/// <c>model.context_length</c> → <c>generation.max_model_len</c>, its eos/pad/bos ids as above, and
/// <c>model.decoder.filename</c> → <c>default_model_filename</c>.</item>
/// <item><c>tokenizer.json</c> → <c>generation.tokenizer</c> of kind <c>tokenizer_json</c>, completed by
/// <c>tokenizer_config.json</c>: <c>eos_token</c> (its text), <c>bos_token</c> and <c>add_bos_token</c>. Without an
/// <c>eos_token</c> text the first <c>eos_token_id</c> is the tokenizer's end of sequence; without
/// <c>add_bos_token</c> the BOS is added when <c>tokenizer.json</c>'s post-processor template starts with a special token,
/// as the Hugging Face tokenizer does.</item>
/// </list>
/// The tokenizer's layer is named by every file it was assembled from (<c>tokenizer.json + tokenizer_config.json</c>).
/// Token ids may be null, and a negative <c>pad_token_id</c> (as some exports write) means none. Every layer is
/// <see cref="ConfigLayer.FromModelFormat"/>: these files complete the generation settings of a model that is generative
/// (a KV-cache decoder, or one whose <c>config.yaml</c> has a <c>generation</c> section) but do not make a model generative.
/// </remarks>
public static class HuggingFaceFiles
{
    /// <summary>The model's architecture (<c>transformers</c>' <c>PretrainedConfig</c>).</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The model's generation defaults (<c>GenerationConfig</c>).</summary>
    public const string GenerationConfigFileName = "generation_config.json";

    /// <summary>The tokenizer's settings: special tokens and whether a BOS is added.</summary>
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    /// <summary>The tokenizer itself (the <c>tokenizers</c> library's format).</summary>
    public const string TokenizerFileName = "tokenizer.json";

    /// <summary>onnxruntime-genai's configuration of a model its builder exported (no config.json beside it).</summary>
    public const string GenAiConfigFileName = "genai_config.json";

    /// <summary>
    /// Reads the Hugging Face files of <paramref name="versionDirectory"/> into configuration layers, the highest
    /// precedence first (none when it holds none of the files). File paths in the layers (the tokenizer's) are relative
    /// to <paramref name="modelDirectory"/>, as every tokenizer file of a model's configuration is. Throws
    /// <see cref="ModelConfigException"/> naming the file and the problem when a file is not valid JSON or holds a value
    /// of the wrong kind.
    /// </summary>
    public static IReadOnlyList<ConfigLayer> Read(string versionDirectory, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(versionDirectory);
        ArgumentNullException.ThrowIfNull(modelDirectory);
        using var generationConfig = HuggingFaceJson.ReadObject(Path.Combine(versionDirectory, GenerationConfigFileName), GenerationConfigFileName);
        using var config = HuggingFaceJson.ReadObject(Path.Combine(versionDirectory, ConfigFileName), ConfigFileName);
        using var tokenizerConfig = HuggingFaceJson.ReadObject(Path.Combine(versionDirectory, TokenizerConfigFileName), TokenizerConfigFileName);
        using var genAiConfig = HuggingFaceJson.ReadObject(Path.Combine(versionDirectory, GenAiConfigFileName), GenAiConfigFileName);
        var genAi = GenAiModel(genAiConfig);
        var fromGenerationConfig = SpecialIds.Read(generationConfig?.RootElement, GenerationConfigFileName);
        var fromConfig = SpecialIds.Read(config?.RootElement, ConfigFileName);
        var fromGenAi = SpecialIds.Read(genAi, GenAiConfigFileName);

        var layers = new List<ConfigLayer>();
        if (genAi is { } model)
        {
            // onnxruntime-genai's own file names the graph, the context length and the special ids.
            var decoder = model.TryGetProperty("decoder", out var d) && d.ValueKind == JsonValueKind.Object ? d : default;
            var filename = decoder.ValueKind == JsonValueKind.Object && decoder.TryGetProperty("filename", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            var generation = new ModelConfigFile.GenerationEntry
            {
                MaxModelLen = HuggingFaceJson.Int(model, "context_length", GenAiConfigFileName),
                StopTokenIds = fromGenAi.Eos,
                PadTokenId = fromGenAi.Pad,
            };
            layers.Add(new ConfigLayer(GenAiConfigFileName, new ModelConfigFile { Generation = generation, DefaultModelFilename = filename }) { FromModelFormat = true });
        }
        Add(layers, GenerationConfigFileName, new ModelConfigFile.GenerationEntry
        {
            StopTokenIds = fromGenerationConfig.Eos,
            PadTokenId = fromGenerationConfig.Pad,
        });
        var tokenizerPath = Path.Combine(versionDirectory, TokenizerFileName);
        if (File.Exists(tokenizerPath))
        {
            var (spec, sources) = ReadTokenizer(tokenizerPath, tokenizerConfig, [fromGenAi, fromGenerationConfig, fromConfig]);
            spec.File = Path.GetRelativePath(modelDirectory, tokenizerPath).Replace(Path.DirectorySeparatorChar, '/');
            Add(layers, string.Join(" + ", sources), new ModelConfigFile.GenerationEntry { Tokenizer = spec });
        }
        if (config is not null)
        {
            var root = config.RootElement;
            Add(layers, ConfigFileName, new ModelConfigFile.GenerationEntry
            {
                MaxModelLen = HuggingFaceJson.Int(root, "max_position_embeddings", ConfigFileName) ?? HuggingFaceJson.Int(root, "n_positions", ConfigFileName),
                StopTokenIds = fromConfig.Eos,
                PadTokenId = fromConfig.Pad,
            });
        }
        return layers;
    }

    private static void Add(List<ConfigLayer> layers, string source, ModelConfigFile.GenerationEntry generation)
    {
        if (generation.StopTokenIds is not null || generation.PadTokenId is not null || generation.MaxModelLen is not null || generation.Tokenizer is not null)
        {
            layers.Add(new ConfigLayer(source, new ModelConfigFile { Generation = generation }) { FromModelFormat = true });
        }
    }

    /// <summary>The tokenizer spec of tokenizer.json with its special tokens, and the files that gave its values.</summary>
    private static (TokenizerSpec Spec, List<string> Sources) ReadTokenizer(string tokenizerPath, JsonDocument? tokenizerConfig, SpecialIds[] idFiles)
    {
        var spec = new TokenizerSpec { Kind = TokenizerSpec.TokenizerJson };
        var sources = new List<string> { TokenizerFileName };
        void From(string file)
        {
            if (!sources.Contains(file))
            {
                sources.Add(file);
            }
        }

        string? bosText = null;
        bool? addBos = null;
        if (tokenizerConfig is not null)
        {
            var root = tokenizerConfig.RootElement;
            spec.EosToken = HuggingFaceJson.TokenText(root, "eos_token", TokenizerConfigFileName);
            bosText = HuggingFaceJson.TokenText(root, "bos_token", TokenizerConfigFileName);
            addBos = HuggingFaceJson.Bool(root, "add_bos_token", TokenizerConfigFileName);
            if (spec.EosToken is not null || bosText is not null || addBos is not null)
            {
                From(TokenizerConfigFileName);
            }
        }

        var tokenizer = TokenizerJsonSummary.Read(tokenizerPath, TokenizerFileName);
        if (bosText is null && Array.Find(idFiles, f => f.Bos is not null) is { Bos: { } bosId } bosFile && tokenizer.AddedTokens.TryGetValue(bosId, out var bosById))
        {
            bosText = bosById;
            From(bosFile.File);
        }
        if (addBos is { } explicitly)
        {
            // tokenizer_config.json's flag rules, as transformers' Llama-style fast tokenizers rebuild their template from it.
            spec.AddBos = explicitly;
            spec.BosToken = bosText ?? tokenizer.TemplateBos;
        }
        else if (tokenizer.TemplateBos is { } templateBos)
        {
            spec.AddBos = true;
            spec.BosToken = templateBos;
        }
        else if (bosText is not null)
        {
            // A BOS the tokenizer defines but its template does not add (GPT-2): named, not added.
            spec.AddBos = false;
            spec.BosToken = bosText;
        }

        if (spec.EosToken is null && Array.Find(idFiles, f => f.Eos is not null) is { Eos: { } eosIds } eosFile)
        {
            spec.EosTokenId = eosIds[0];
            From(eosFile.File);
        }
        return (spec, sources);
    }

    /// <summary>genai_config.json's <c>model</c> object, or null without the file.</summary>
    private static JsonElement? GenAiModel(JsonDocument? genAiConfig)
    {
        if (genAiConfig is null)
        {
            return null;
        }
        return genAiConfig.RootElement.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.Object
            ? model
            : throw new ModelConfigException($"{GenAiConfigFileName}: has no \"model\" object");
    }

    /// <summary>The special token ids of one file (generation_config.json, config.json, or genai_config.json's model), and the file.</summary>
    private readonly record struct SpecialIds(string File, List<int>? Eos, int? Bos, long? Pad)
    {
        public static SpecialIds Read(JsonElement? root, string file) => root is { } r
            ? new SpecialIds(
                file,
                HuggingFaceJson.Ids(r, "eos_token_id", file),
                HuggingFaceJson.OptionalId(r, "bos_token_id", file),
                HuggingFaceJson.OptionalId(r, "pad_token_id", file))
            : new SpecialIds(file, null, null, null);
    }
}
