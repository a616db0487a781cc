using InferenceServer.ModelBuilder;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The legacy merged decoder has exactly older Optimum's <c>decoder_model_merged.onnx</c> interface (no
/// <c>position_ids</c>; <c>use_cache_branch</c> BOOL <c>[1]</c> last) and its structure: one <c>If</c> node whose
/// first-step branch never reads the past, the weights shared from the main graph.
/// </summary>
public sealed class LegacyMergedLayoutTests(LegacyMergedDecoderFixture fixture) : IClassFixture<LegacyMergedDecoderFixture>
{
    private static DecoderOptions Options => LegacyMergedDecoderFixture.Options;

    [Fact]
    public void Inputs_and_outputs_are_the_merged_interface_with_use_cache_branch_and_without_position_ids()
    {
        var session = fixture.Session.Session;
        Assert.Equal(
            ["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "use_cache_branch"],
            session.InputNames);
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], session.OutputNames);
        Assert.DoesNotContain("position_ids", session.InputNames);

        void Check(NodeMetadata meta, Type type, string?[] symbols, int[] dims)
        {
            Assert.Equal(type, meta.ElementType);
            Assert.Equal(symbols.Select(s => s ?? ""), meta.SymbolicDimensions);
            Assert.Equal(dims, meta.Dimensions);
        }

        const string batch = "batch_size", sequence = "sequence_length", past = "past_sequence_length", total = "past_sequence_length + sequence_length";
        Check(session.InputMetadata["input_ids"], typeof(long), [batch, sequence], [-1, -1]);
        Check(session.InputMetadata["attention_mask"], typeof(long), [batch, total], [-1, -1]);
        Check(session.InputMetadata["use_cache_branch"], typeof(bool), [null], [1]);
        Check(session.OutputMetadata["logits"], typeof(float), [batch, sequence, null], [-1, -1, Options.Vocab]);
        for (int i = 0; i < Options.Layers; i++)
        {
            foreach (string kind in new[] { "key", "value" })
            {
                Check(session.InputMetadata[$"past_key_values.{i}.{kind}"], typeof(float), [batch, null, past, null], [-1, Options.KvHeads, -1, Options.HeadDim]);
                Check(session.OutputMetadata[$"present.{i}.{kind}"], typeof(float), [batch, null, total, null], [-1, Options.KvHeads, -1, Options.HeadDim]);
            }
        }

        Assert.Equal(session.InputNames, LegacyOptimumDecoderLayout.InputNames(Options.Layers));
        Assert.Equal(session.OutputNames, LegacyOptimumDecoderLayout.OutputNames(Options.Layers));
    }

    [Fact]
    public void Graph_is_one_if_node_whose_first_step_branch_never_reads_the_past_and_whose_branches_share_the_weights()
    {
        var model = ModelProto.Parser.ParseFrom(fixture.ModelBytes);
        Assert.Equal([("", 17L)], model.OpsetImport.Select(o => (o.Domain, o.Version)));
        var node = Assert.Single(model.Graph.Node);
        Assert.Equal("If", node.OpType);
        Assert.Equal(["use_cache_branch"], node.Input);
        Assert.Equal(LegacyOptimumDecoderLayout.OutputNames(Options.Layers), node.Output);
        var withPast = node.Attribute.Single(a => a.Name == "then_branch").G;
        var noPast = node.Attribute.Single(a => a.Name == "else_branch").G;
        Assert.Equal(LegacyMergedDecoderGraph.WithPastBranch, withPast.Name);
        Assert.Equal(LegacyMergedDecoderGraph.NoPastBranch, noPast.Name);

        string[] pastInputs = [.. Enumerable.Range(0, Options.Layers).SelectMany(i => new[] { OptimumDecoderLayout.PastKey(i), OptimumDecoderLayout.PastValue(i) })];
        var readByWithPast = withPast.Node.SelectMany(n => n.Input).ToHashSet();
        var readByNoPast = noPast.Node.SelectMany(n => n.Input).ToHashSet();
        Assert.All(pastInputs, p => Assert.Contains(p, readByWithPast));
        Assert.All(pastInputs, p => Assert.DoesNotContain(p, readByNoPast));
        Assert.DoesNotContain("position_ids", readByWithPast.Concat(readByNoPast));

        // Every weight lives once, in the main graph; the branches hold nothing but nodes and typed outputs.
        var weights = new DecoderWeights(Options);
        var mainInitializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        Assert.All(weights.Tensors.Append(weights.RopeCos).Append(weights.RopeSin), t => Assert.Contains(t.Name, mainInitializers));
        Assert.All(weights.Tensors, t => Assert.Contains(t.Name, readByWithPast));
        Assert.All(weights.Tensors, t => Assert.Contains(t.Name, readByNoPast));
        foreach (var branch in new[] { withPast, noPast })
        {
            Assert.Empty(branch.Initializer);
            Assert.Equal(1 + 2 * Options.Layers, branch.Output.Count);
            Assert.All(branch.Output, o => Assert.Equal((int)TensorElementKind.Float, o.Type.TensorType.ElemType));
            Assert.All(branch.Node, n => Assert.Equal("", n.Domain));
            Assert.DoesNotContain(branch.Node, n => n.OpType is "If" or "Loop" or "Attention" or "GroupQueryAttention" or "RotaryEmbedding");
        }
    }
}
