using System.Text.Json;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The graph has exactly Optimum's <c>text-generation-with-past</c> interface (names, order, element types, fixed and
/// symbolic dimensions), uses standard ONNX operators only, and comes with Hugging Face's config files.
/// </summary>
public sealed class DecoderLayoutTests(SmallDecoderFixture fixture) : IClassFixture<SmallDecoderFixture>
{
    private static DecoderOptions Options => SmallDecoderFixture.Options;

    [Fact]
    public void Inputs_and_outputs_have_optimums_names_order_types_and_dimension_names()
    {
        var session = fixture.Session.Session;
        Assert.Equal(
            ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"],
            session.InputNames);
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], session.OutputNames);

        void Check(NodeMetadata meta, Type type, string?[] symbols, int[] dims)
        {
            Assert.Equal(type, meta.ElementType);
            Assert.Equal(symbols.Select(s => s ?? ""), meta.SymbolicDimensions);
            Assert.Equal(dims, meta.Dimensions);
        }

        const string batch = "batch_size", sequence = "sequence_length", past = "past_sequence_length", total = "past_sequence_length + sequence_length";
        Check(session.InputMetadata["input_ids"], typeof(long), [batch, sequence], [-1, -1]);
        Check(session.InputMetadata["attention_mask"], typeof(long), [batch, total], [-1, -1]);
        Check(session.InputMetadata["position_ids"], typeof(long), [batch, sequence], [-1, -1]);
        Check(session.OutputMetadata["logits"], typeof(float), [batch, sequence, null], [-1, -1, Options.Vocab]);
        for (int i = 0; i < Options.Layers; i++)
        {
            foreach (string kind in new[] { "key", "value" })
            {
                Check(session.InputMetadata[$"past_key_values.{i}.{kind}"], typeof(float), [batch, null, past, null], [-1, Options.KvHeads, -1, Options.HeadDim]);
                Check(session.OutputMetadata[$"present.{i}.{kind}"], typeof(float), [batch, null, total, null], [-1, Options.KvHeads, -1, Options.HeadDim]);
            }
        }

        Assert.Equal(session.InputNames, OptimumDecoderLayout.InputNames(Options.Layers));
        Assert.Equal(session.OutputNames, OptimumDecoderLayout.OutputNames(Options.Layers));
    }

    [Fact]
    public void Graph_uses_standard_onnx_operators_only_and_stores_the_cache_with_the_kv_heads()
    {
        var model = ModelProto.Parser.ParseFrom(DecoderModelWriter.EmbeddedModelBytes(Options));
        Assert.Equal([("", 17L)], model.OpsetImport.Select(o => (o.Domain, o.Version)));
        Assert.All(model.Graph.Node, n => Assert.Equal("", n.Domain));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType is "Attention" or "GroupQueryAttention" or "RotaryEmbedding" or "SimplifiedLayerNormalization");
        // Grouped-query: H_kv < H, and the K/V projections are H_kv heads wide.
        Assert.True(Options.KvHeads < Options.Heads);
        var kProj = model.Graph.Initializer.Single(t => t.Name == "model.layers.0.self_attn.k_proj.weight");
        var qProj = model.Graph.Initializer.Single(t => t.Name == "model.layers.0.self_attn.q_proj.weight");
        Assert.Equal([Options.DModel, Options.KvHeads * Options.HeadDim], kProj.Dims);
        Assert.Equal([Options.DModel, Options.Heads * Options.HeadDim], qProj.Dims);

        // The present tensors a call returns have H_kv heads and past + new columns.
        var step = fixture.Session.Run([[5, 6, 7]], [DecoderSession.Ones(3)], [[0, 1, 2]], KvCache.Empty(Options, 1));
        Assert.Equal([1, Options.KvHeads, 3, Options.HeadDim], step.Present.Shape);
    }

    [Fact]
    public void Config_files_describe_the_model_as_transformers_does()
    {
        var options = Options with { Precision = DecoderPrecision.Float16, BosTokenId = 1, EosTokenId = 2, PadTokenId = 0 };
        using var config = JsonDocument.Parse(HuggingFaceConfigFiles.Config(options));
        var root = config.RootElement;
        Assert.Equal("llama", root.GetProperty("model_type").GetString());
        Assert.Equal("LlamaForCausalLM", root.GetProperty("architectures")[0].GetString());
        Assert.Equal(Options.DModel, root.GetProperty("hidden_size").GetInt32());
        Assert.Equal(Options.Layers, root.GetProperty("num_hidden_layers").GetInt32());
        Assert.Equal(Options.Heads, root.GetProperty("num_attention_heads").GetInt32());
        Assert.Equal(Options.KvHeads, root.GetProperty("num_key_value_heads").GetInt32());
        Assert.Equal(Options.HeadDim, root.GetProperty("head_dim").GetInt32());
        Assert.Equal(Options.IntermediateSize, root.GetProperty("intermediate_size").GetInt32());
        Assert.Equal(Options.Vocab, root.GetProperty("vocab_size").GetInt32());
        Assert.Equal(Options.MaxPositions, root.GetProperty("max_position_embeddings").GetInt32());
        Assert.Equal(1e-5, root.GetProperty("rms_norm_eps").GetDouble(), 12);
        Assert.Equal(10000.0, root.GetProperty("rope_theta").GetDouble());
        Assert.Equal("silu", root.GetProperty("hidden_act").GetString());
        Assert.Equal("float16", root.GetProperty("torch_dtype").GetString());
        Assert.Equal(1, root.GetProperty("bos_token_id").GetInt32());
        Assert.Equal(2, root.GetProperty("eos_token_id").GetInt32());

        using var generation = JsonDocument.Parse(HuggingFaceConfigFiles.GenerationConfig(options));
        Assert.Equal(
            [("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 0)],
            generation.RootElement.EnumerateObject().Select(p => (p.Name, p.Value.GetInt32())));
    }
}
