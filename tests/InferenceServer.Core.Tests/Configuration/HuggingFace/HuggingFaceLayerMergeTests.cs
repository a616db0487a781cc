using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Configuration.HuggingFace;

/// <summary>
/// Hugging Face layers beneath a model's config.yaml: the generation section merges key by key, each key keeps its
/// source, and the files make a KV-cache decoder generative but leave other models tensor models.
/// </summary>
public sealed class HuggingFaceLayerMergeTests
{
    private static readonly BackendIdentity Onnx = new("onnxruntime", "onnxruntime_onnx", "model.onnx");
    private static readonly ConfigDefaults Defaults = new(MaxBatchSize: 8, MaxQueueSize: 1024);

    /// <summary>One layer of a KV-cache decoder in Optimum's layout: vocabulary 300, 2 KV heads of 8.</summary>
    private static readonly ModelSignature KvDecoder = new(
        [
            new TensorConfig("input_ids", DataType.Int64, [-1, -1]),
            new TensorConfig("attention_mask", DataType.Int64, [-1, -1]),
            new TensorConfig("position_ids", DataType.Int64, [-1, -1]),
            new TensorConfig("past_key_values.0.key", DataType.Fp32, [-1, 2, -1, 8]),
            new TensorConfig("past_key_values.0.value", DataType.Fp32, [-1, 2, -1, 8]),
        ],
        [
            new TensorConfig("logits", DataType.Fp32, [-1, -1, 300]),
            new TensorConfig("present.0.key", DataType.Fp32, [-1, 2, -1, 8]),
            new TensorConfig("present.0.value", DataType.Fp32, [-1, 2, -1, 8]),
        ]);

    private readonly string _model = Paths.NewTempDirectory("hf-merge");

    private IReadOnlyList<ConfigLayer> WriteExport()
    {
        var version = Directory.CreateDirectory(Path.Combine(_model, "1")).FullName;
        File.WriteAllText(Path.Combine(version, "generation_config.json"), """{"bos_token_id": 1, "eos_token_id": [2, 5]}""");
        File.WriteAllText(Path.Combine(version, "config.json"), """{"max_position_embeddings": 256, "eos_token_id": 2, "pad_token_id": 0}""");
        File.WriteAllText(Path.Combine(version, "tokenizer_config.json"), """{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""");
        File.WriteAllText(Path.Combine(version, "tokenizer.json"), HuggingFaceFilesTests.TokenizerJson);
        return HuggingFaceFiles.Read(version, _model);
    }

    private static ConfiguredModel WithYaml(string? yaml) =>
        yaml is null ? ConfiguredModel.None : ConfiguredModel.Merge([new ConfigLayer("config.yaml", ModelConfigFile.Parse(yaml, "config.yaml"))]);

    private static ModelConfig Resolve(ConfiguredModel configured, ModelSignature signature) =>
        ModelConfigResolver.Resolve("m", configured, Onnx, signature, "CPUExecutionProvider", ["cpu"], Defaults);

    [Fact]
    public void A_config_yaml_generation_key_overrides_that_key_only_and_provenance_names_each_keys_file()
    {
        var configured = WithYaml("generation: {max_model_len: 64}\n").WithFormatLayers(WriteExport());
        var generation = configured.Values.Generation!;
        Assert.Equal(64, generation.MaxModelLen);
        Assert.Equal([2, 5], generation.StopTokenIds);
        Assert.Equal(0, generation.PadTokenId);
        Assert.Equal("1/tokenizer.json", generation.Tokenizer!.File);
        Assert.Equal("config.yaml", configured.OriginOf("generation.max_model_len"));
        Assert.Equal("generation_config.json", configured.OriginOf("generation.stop_token_ids"));
        Assert.Equal("config.json", configured.OriginOf("generation.pad_token_id"));
        Assert.Equal("tokenizer.json + tokenizer_config.json", configured.OriginOf("generation.tokenizer"));
        Assert.Equal("config.yaml, generation_config.json, tokenizer.json + tokenizer_config.json, config.json", configured.OriginOf("generation"));

        var config = Resolve(configured, KvDecoder);
        var settings = Assert.IsType<GenerationSettings>(config.Generation);
        Assert.Equal(64, settings.MaxModelLen);
        Assert.Equal([2, 5], settings.StopTokenIds);
        Assert.Equal("</s>", settings.Tokenizer.EosToken);
        Assert.Equal("config.yaml", config.Provenance["generation.max_model_len"]);
        Assert.Equal("generation_config.json", config.Provenance["generation.stop_token_ids"]);
        Assert.Equal("tokenizer.json + tokenizer_config.json", config.Provenance["generation.tokenizer"]);
        Assert.Equal("config.json", config.Provenance["generation.pad_token_id"]);
        Assert.Equal("model", config.Provenance["input.past_key_values.0.key"]);
    }

    [Fact]
    public void Without_config_yaml_every_generation_value_comes_from_the_files()
    {
        var configured = ConfiguredModel.None.WithFormatLayers(WriteExport());
        Assert.False(configured.DeclaresGeneration);
        var config = Resolve(configured, KvDecoder);
        Assert.Equal(256, config.Generation!.MaxModelLen);
        Assert.Equal("config.json", config.Provenance["generation.max_model_len"]);
        Assert.Equal("generation_config.json, tokenizer.json + tokenizer_config.json, config.json", config.Provenance["generation"]);
    }

    [Fact]
    public void A_config_yaml_tokenizer_replaces_the_files_tokenizer_whole()
    {
        var configured = WithYaml("generation: {tokenizer: {kind: characters, vocabulary: abc}}\n").WithFormatLayers(WriteExport());
        var tokenizer = configured.Values.Generation!.Tokenizer!;
        Assert.Equal(TokenizerSpec.Characters, tokenizer.Kind);
        // Not tokenizer_config.json's "</s>", which a character vocabulary would not have.
        Assert.Null(tokenizer.EosToken);
        Assert.Null(tokenizer.File);
        Assert.Equal("config.yaml", configured.OriginOf("generation.tokenizer"));
        Assert.Equal(256, configured.Values.Generation!.MaxModelLen);
    }

    [Fact]
    public void The_files_do_not_make_a_tensor_model_generative()
    {
        var tensorModel = new ModelSignature(
            [new TensorConfig("input_ids", DataType.Int64, [-1, 16]), new TensorConfig("attention_mask", DataType.Int64, [-1, 16])],
            [new TensorConfig("last_hidden_state", DataType.Fp32, [-1, 16, 32])]);
        var config = Resolve(ConfiguredModel.None.WithFormatLayers(WriteExport()), tensorModel);
        Assert.Null(config.Generation);
        Assert.DoesNotContain(config.Provenance.Keys, k => k.StartsWith("generation", StringComparison.Ordinal));
    }

    [Fact]
    public void A_kv_decoder_without_any_tokenizer_is_refused_with_the_reason()
    {
        var version = Directory.CreateDirectory(Path.Combine(_model, "1")).FullName;
        File.WriteAllText(Path.Combine(version, "config.json"), """{"max_position_embeddings": 256}""");
        var configured = ConfiguredModel.None.WithFormatLayers(HuggingFaceFiles.Read(version, _model));
        var e = Assert.Throws<ModelConfigException>(() => Resolve(configured, KvDecoder));
        Assert.Contains("KV-cache decoder", e.Message);
        Assert.Contains("no tokenizer", e.Message);
    }

    [Fact]
    public void Keys_no_file_sets_are_absent_and_a_higher_empty_section_still_declares_generation()
    {
        var configured = WithYaml("generation: {}\n");
        Assert.True(configured.DeclaresGeneration);
        Assert.Equal("config.yaml", configured.OriginOf("generation"));
        Assert.Null(configured.OriginOf("generation.max_model_len"));

        var merged = configured.WithFormatLayers(WriteExport());
        Assert.True(merged.DeclaresGeneration);
        Assert.Equal("config.json", merged.OriginOf("generation.max_model_len"));
        Assert.Null(merged.OriginOf("generation.kv_cache_bytes"));
        Assert.StartsWith("config.yaml, ", merged.OriginOf("generation"), StringComparison.Ordinal);
    }
}
