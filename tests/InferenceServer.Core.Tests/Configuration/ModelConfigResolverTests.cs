using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Configuration;

/// <summary>The resolver works from a signature and the configuration sources alone: no engine is loaded.</summary>
public sealed class ModelConfigResolverTests
{
    private static readonly BackendIdentity Onnx = new("onnxruntime", "onnxruntime_onnx", "model.onnx");
    private static readonly ConfigDefaults Defaults = new(MaxBatchSize: 8, MaxQueueSize: 1024);

    private static readonly ModelSignature Batchable = new(
        [new TensorConfig("x", DataType.Fp32, [-1, 4])],
        [new TensorConfig("y", DataType.Fp32, [-1, 3])]);

    private static ModelConfig Resolve(string? yaml, ModelSignature? signature = null) =>
        ModelConfigResolver.Resolve(
            "m", yaml is null ? ConfiguredModel.None : ConfiguredModel.Merge([new ConfigLayer("config.yaml", ModelConfigFile.Parse(yaml))]),
            Onnx, signature ?? Batchable, "CPUExecutionProvider", ["cpu"], Defaults);

    [Fact]
    public void Without_configuration_everything_is_derived_or_default_and_says_so()
    {
        var config = Resolve(null);
        Assert.Equal(8, config.MaxBatchSize);
        Assert.Equal([4L], Assert.Single(config.Inputs).Dims);
        Assert.NotNull(config.DynamicBatching);
        Assert.Equal(1024, config.Queue.MaxQueueSize);
        Assert.Equal("model", config.Provenance["max_batch_size"]);
        Assert.Equal("model", config.Provenance["input.x"]);
        Assert.Equal("model", config.Provenance["output.y"]);
        Assert.Equal("model", config.Provenance["dynamic_batching"]);
        Assert.Equal("model", config.Provenance["backend"]);
        Assert.Equal("default", config.Provenance["version_policy"]);
        Assert.Equal("default", config.Provenance["device"]);
        Assert.False(config.Provenance.ContainsKey("generation"));
    }

    [Fact]
    public void A_configured_value_wins_over_the_graph_and_names_its_file()
    {
        var config = Resolve("max_batch_size: 2\ninput: [{name: x, data_type: TYPE_FP32, dims: [-1]}]\nplatform: onnxruntime_onnx\ninstance_group: [{count: 2, kind: KIND_CPU}]\n");
        Assert.Equal(2, config.MaxBatchSize);
        Assert.Equal([-1L], Assert.Single(config.Inputs).Dims);
        // max_batch_size set without dynamic_batching: no batching, as Triton.
        Assert.Null(config.DynamicBatching);
        Assert.Equal("config.yaml", config.Provenance["max_batch_size"]);
        Assert.Equal("config.yaml", config.Provenance["input.x"]);
        Assert.Equal("model", config.Provenance["output.y"]);
        Assert.Equal("config.yaml", config.Provenance["platform"]);
        Assert.Equal("config.yaml", config.Provenance["backend"]);
        Assert.Equal("config.yaml", config.Provenance["instance_group"]);
        Assert.False(config.Provenance.ContainsKey("device"));
        Assert.Equal("default", config.Provenance["dynamic_batching"]);
    }

    [Fact]
    public void A_fixed_leading_dimension_means_no_batch()
    {
        var config = Resolve(null, new ModelSignature([new TensorConfig("x", DataType.Fp32, [2, 4])], [new TensorConfig("y", DataType.Fp32, [-1, 3])]));
        Assert.Equal(0, config.MaxBatchSize);
        Assert.Equal([2L, 4L], Assert.Single(config.Inputs).Dims);
        Assert.Null(config.DynamicBatching);
    }

    [Fact]
    public void A_declaration_that_contradicts_the_graph_is_refused()
    {
        var e = Assert.Throws<ModelConfigException>(() => Resolve("input: [{name: x, data_type: TYPE_INT64, dims: [4]}]\n"));
        Assert.Contains("declared INT64 but the model has FP32", e.Message.Replace("TYPE_", ""));
        Assert.Throws<ModelConfigException>(() => Resolve("input: [{name: nope, data_type: TYPE_FP32, dims: [4]}]\n"));
    }

    [Fact]
    public void Generation_settings_are_plain_values_resolved_against_the_tensors()
    {
        var lm = new ModelSignature([new TensorConfig("ids", DataType.Int64, [-1, 16])], [new TensorConfig("logits", DataType.Fp32, [-1, 16, 40])]);
        var config = Resolve("generation: {tokenizer: {kind: characters, vocabulary: abc}, max_running_sequences: 4}\n", lm);
        var generation = Assert.IsType<GenerationSettings>(config.Generation);
        Assert.Equal(16, generation.ContextWindow);
        Assert.Equal("ids", generation.InputName);
        Assert.True(generation.LogitsPerPosition);
        Assert.Equal(40, generation.LogitsWidth);
        Assert.Equal(4, generation.MaxRunningSequences);
        Assert.Equal("characters", generation.Tokenizer.Kind);
        Assert.Equal("config.yaml", config.Provenance["generation"]);

        var e = Assert.Throws<ModelConfigException>(() => Resolve("generation: {tokenizer: {kind: characters, vocabulary: abc}, max_running_sequences: 9}\n", lm));
        Assert.Contains("max_running_sequences 9", e.Message);
    }
}
