using InferenceServer.Configuration;
using InferenceServer.Tensors;
using InferenceServer.Tests.Generation.Decoding;

namespace InferenceServer.Tests.Configuration;

/// <summary>
/// A KV-cache decoder's scheduling settings: the per-iteration token budget (max_num_batched_tokens) and prefix caching,
/// with vLLM's names, their defaults, and the refusals that name the key.
/// </summary>
public sealed class GenerationSettingsTests
{
    private static GenerationSettings Resolve(Action<ModelConfigFile.GenerationEntry>? set = null)
    {
        var entry = new ModelConfigFile.GenerationEntry { Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcd" } };
        set?.Invoke(entry);
        var (inputs, outputs) = KvCachePlanTests.Graph(positionIds: true, useCacheBranch: false);
        return GenerationSettings.Resolve(entry, maxBatchSize: 0, inputs, outputs);
    }

    [Fact]
    public void The_defaults_are_a_budget_of_512_tokens_and_prefix_caching_on_with_256_MiB()
    {
        var settings = Resolve();
        Assert.Equal(512, settings.MaxNumBatchedTokens);
        Assert.True(settings.EnablePrefixCaching);
        Assert.Equal(256L << 20, settings.PrefixCacheBytes);
        // Many running sequences: twice their number, so that a prompt still gets a chunk beside them.
        Assert.Equal(800, Resolve(e => e.MaxRunningSequences = 400).MaxNumBatchedTokens);
    }

    [Fact]
    public void Each_setting_is_read()
    {
        var settings = Resolve(e =>
        {
            e.MaxNumBatchedTokens = 24;
            e.EnablePrefixCaching = false;
            e.PrefixCacheBytes = 1024;
        });
        Assert.Equal((24, false, 1024L), (settings.MaxNumBatchedTokens, settings.EnablePrefixCaching, settings.PrefixCacheBytes));
    }

    [Theory]
    [InlineData(16, null, "generation.max_num_batched_tokens 16 must exceed max_running_sequences 16")]
    [InlineData(0, null, "generation.max_num_batched_tokens 0 must exceed")]
    [InlineData(null, -1L, "generation.prefix_cache_bytes -1 must not be negative")]
    public void A_budget_that_leaves_no_prompt_token_or_a_negative_prefix_budget_is_refused_naming_the_key(int? batched, long? prefixBytes, string message)
    {
        var error = Assert.Throws<ModelConfigException>(() => Resolve(e =>
        {
            e.MaxNumBatchedTokens = batched;
            e.PrefixCacheBytes = prefixBytes;
        }));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_window_decoder_refuses_the_kv_cache_scheduling_keys()
    {
        var entry = new ModelConfigFile.GenerationEntry
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcd" },
            EnablePrefixCaching = true,
        };
        var error = Assert.Throws<ModelConfigException>(() => GenerationSettings.Resolve(
            entry, maxBatchSize: 8, [new TensorConfig("ids", DataType.Int64, [16])], [new TensorConfig("logits", DataType.Fp32, [16, 4])]));
        Assert.Contains("enable_prefix_caching", error.Message, StringComparison.Ordinal);
        Assert.Contains("KV-cache decoders", error.Message, StringComparison.Ordinal);
    }
}
