using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Integration.Decoding;

/// <summary>
/// A decoder in onnxruntime-genai's builder layout (GroupQueryAttention with rotary inside, no position_ids,
/// genai_config.json and no config.json) served with no config.yaml: its settings come from genai_config.json, and its
/// text equals that of the same weights exported in Optimum's layout, whose KV decoding the decoder tests check against
/// full recomputation. Its sequences share one right-padded batch region (GroupQueryAttention reads each row's length
/// from its mask), as the config endpoint shows.
/// </summary>
public sealed class GenAiServingTests(ITestOutputHelper output)
{
    private static readonly DecoderOptions Optimum = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 512, MaxPositions = 256 };

    [Fact]
    public async Task A_genai_export_is_served_from_its_genai_config_and_writes_what_the_optimum_export_of_the_same_weights_writes()
    {
        var repo = Paths.NewTempDirectory("genai-serving");
        DecoderModelWriter.Write(Optimum with { Layout = DecoderLayout.GenAi }, Path.Combine(repo, "genai", "1"));
        DecoderModelWriter.Write(Optimum, Path.Combine(repo, "optimum", "1"));
        Assert.True(File.Exists(Path.Combine(repo, "genai", "1", "genai_config.json")));
        Assert.False(File.Exists(Path.Combine(repo, "genai", "1", "config.json")));
        await using var server = await RunningServer.StartAsync(repo);

        var config = JsonNode.Parse(await server.Http.GetStringAsync("/v2/models/genai/config"))!;
        Assert.Equal("genai_config.json", (string?)config["provenance"]!["generation.max_model_len"]);
        Assert.Equal(256, (int)config["generation"]!["max_model_len"]!);
        var kvCache = config["generation"]!["kv_cache"]!;
        Assert.False((bool)kvCache["position_ids"]!);
        Assert.True((bool)kvCache["lengths_from_mask"]!);
        // Past and present share one buffer: the plan allocates one copy of the cache.
        Assert.True((bool)kvCache["past_present_share_buffer"]!);
        Assert.Equal(((long)(int)kvCache["region_tokens"]! + (int)kvCache["prefill_tokens"]!) * (long)kvCache["bytes_per_token"]!, (long)kvCache["allocated_bytes_per_instance"]!);
        // One batch region (and a prefill region beside it), not one region per sequence.
        Assert.Equal(1, (int)kvCache["regions"]!);
        Assert.True((int)kvCache["prefill_tokens"]! > 0);
        Assert.True((int)config["generation"]!["max_running_sequences"]! > 1);
        // The scheduling settings, their defaults and where they come from.
        Assert.Equal(512, (int)kvCache["max_num_batched_tokens"]!);
        Assert.True((bool)kvCache["enable_prefix_caching"]!);
        Assert.Equal(256L << 20, (long)kvCache["prefix_cache_bytes"]!);
        Assert.Equal(16, (int)kvCache["prefix_block_tokens"]!);
        Assert.Equal("default", (string?)config["provenance"]!["generation.max_num_batched_tokens"]);

        const string text = "It was the best of times, it was the worst of times, it was the age of wisdom";
        var prompts = Enumerable.Range(0, 4).Select(i => text[..(6 + i * 17)]).ToArray();
        string Body(string model, string prompt, int i) => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = model,
            ["prompt"] = prompt,
            ["max_tokens"] = 16,
            ["stream"] = true,
            ["temperature"] = i % 2 == 0 ? 0 : 0.8,
            ["seed"] = 7 + i,
            ["ignore_eos"] = true,
        });
        var reference = new List<string>();
        for (var i = 0; i < prompts.Length; i++)
        {
            reference.Add(await KvCacheServingTests.StreamAsync(server.Http, Body("optimum", prompts[i], i)));
        }
        var together = await Task.WhenAll(prompts.Select((p, i) => KvCacheServingTests.StreamAsync(server.Http, Body("genai", p, i))));
        for (var i = 0; i < prompts.Length; i++)
        {
            output.WriteLine($"{prompts[i].Length,3} chars -> {JsonSerializer.Serialize(together[i])}");
            Assert.Equal(reference[i], together[i]);
        }
    }
}
