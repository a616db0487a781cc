using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Generation.Decoding;

/// <summary>
/// Which KV-cache graphs get one batch region: those with <c>position_ids</c> (left-padded) and onnxruntime-genai's
/// (lengths from the mask, right-padded); the older merged export (use_cache_branch, no position_ids) and any other
/// graph without position_ids get one region per sequence.
/// </summary>
public sealed class KvCachePlanTests
{
    private static KvCachePlan Plan(bool positionIds, bool useCacheBranch, bool genAi, long? kvCacheBytes = null)
    {
        var (inputs, outputs) = Graph(positionIds, useCacheBranch);
        var settings = GenerationSettings.Resolve(
            new ModelConfigFile.GenerationEntry { Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcd" }, MaxModelLen = 64, MaxRunningSequences = 4, KvCacheBytes = kvCacheBytes },
            maxBatchSize: 0, inputs, outputs, lengthsFromMask: genAi);
        return KvCachePlan.Create(settings);
    }

    /// <summary>A KV-cache decoder's tensors: 2 layers, 2 KV heads of 8, a vocabulary of 32.</summary>
    internal static (List<TensorConfig> Inputs, List<TensorConfig> Outputs) Graph(bool positionIds, bool useCacheBranch)
    {
        var inputs = new List<TensorConfig>
        {
            new("input_ids", DataType.Int64, [-1, -1]),
            new("attention_mask", DataType.Int64, [-1, -1]),
        };
        if (positionIds)
        {
            inputs.Add(new("position_ids", DataType.Int64, [-1, -1]));
        }
        if (useCacheBranch)
        {
            inputs.Add(new("use_cache_branch", DataType.Bool, [1]));
        }
        var outputs = new List<TensorConfig> { new("logits", DataType.Fp32, [-1, -1, 32]) };
        for (var l = 0; l < 2; l++)
        {
            inputs.Add(new($"past_key_values.{l}.key", DataType.Fp32, [-1, 2, -1, 8]));
            inputs.Add(new($"past_key_values.{l}.value", DataType.Fp32, [-1, 2, -1, 8]));
            outputs.Add(new($"present.{l}.key", DataType.Fp32, [-1, 2, -1, 8]));
            outputs.Add(new($"present.{l}.value", DataType.Fp32, [-1, 2, -1, 8]));
        }
        return (inputs, outputs);
    }

    [Theory]
    [InlineData(true, false, false, false, true)]
    [InlineData(true, false, true, false, true)]
    [InlineData(false, false, true, true, true)]
    [InlineData(false, true, true, false, false)]
    [InlineData(false, true, false, false, false)]
    [InlineData(false, false, false, false, false)]
    public void Graphs_that_can_be_padded_get_a_batch_region_and_the_others_a_region_per_sequence(
        bool positionIds, bool useCacheBranch, bool genAi, bool lengthsFromMask, bool batched)
    {
        var plan = Plan(positionIds, useCacheBranch, genAi);
        Assert.Equal(lengthsFromMask, plan.Layout.LengthsFromMask);
        Assert.Equal(batched ? 1 : 4, plan.Regions);
        Assert.Equal(batched ? 4 : 1, plan.RowsPerRegion);
        Assert.Equal(batched, plan.PrefillTokens > 0);
    }

    [Fact]
    public void A_genai_graph_shares_past_and_present_so_its_plan_takes_one_copy()
    {
        // 2 layers x key and value x 2 heads x 8 x 4 bytes = 256 bytes a token; a budget of 192 tokens (one copy).
        const long perToken = 2 * 2 * 2 * 8 * 4;
        var genAi = Plan(false, false, true, 192 * perToken);
        Assert.Equal(1, genAi.Copies);
        Assert.Equal(64, genAi.MaxSequenceTokens);
        Assert.Equal(64, genAi.PrefillTokens);
        // Rows take memory as they grow (the stride follows the longest row), so every running row has a place.
        Assert.Equal(4, genAi.RowsPerRegion);
        Assert.Equal(128, genAi.RegionTokens);
        Assert.Equal(192 * perToken, genAi.Bytes);
        // The same budget, two copies (past and present apart): half the tokens.
        var optimum = Plan(true, false, false, 192 * perToken);
        Assert.Equal(2, optimum.Copies);
        Assert.Equal(48, optimum.RegionTokens);
        Assert.Equal(48, optimum.PrefillTokens);
        Assert.Equal(192 * perToken, optimum.Bytes);
        // Unlimited budget: rows x max_model_len plus the prefill region, once.
        var wide = Plan(false, false, true);
        Assert.Equal(4, wide.RowsPerRegion);
        Assert.Equal(((4 * 64) + 64) * perToken, wide.Bytes);
    }
}
