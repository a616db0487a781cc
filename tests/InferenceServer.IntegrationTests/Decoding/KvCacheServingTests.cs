using System.Text.Json;
using InferenceServer.Backends;
using InferenceServer.Generation;
using Microsoft.Extensions.DependencyInjection;
using InferenceServer.Configuration;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Repository;
using InferenceServer.Scheduling;
using InferenceServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Integration.Decoding;

/// <summary>
/// A KV-cache decoder served end to end over the OpenAI API: concurrent streams of different prompt lengths each equal
/// their single-stream output, the cache's memory bounds admission, and prompts that cannot fit are 400s that name the
/// numbers.
/// </summary>
public sealed class KvCacheServingTests(ITestOutputHelper output)
{
    /// <summary>95 printable ASCII characters, token i being character i (ids below the model's 256).</summary>
    internal static readonly string Vocabulary = new(Enumerable.Range(32, 95).Select(c => (char)c).ToArray());

    private static readonly DecoderOptions Model = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = 256, Tokenizer = false };

    internal static string Repository(DecoderOptions options, string extraGeneration = "")
    {
        var repo = Paths.NewTempDirectory("kv-serving");
        var version = Path.Combine(repo, "lm", "1");
        Directory.CreateDirectory(version);
        DecoderModelWriter.Write(options, version);
        File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"),
            "generation:\n" +
            "  tokenizer:\n" +
            "    kind: characters\n" +
            $"    vocabulary: {JsonSerializer.Serialize(Vocabulary)}\n" +
            "  max_running_sequences: 16\n" +
            extraGeneration);
        return repo;
    }

    /// <summary>A version directory as Optimum exports it (graph, config.json, generation_config.json, tokenizer files), and no config.yaml.</summary>
    internal static string HuggingFaceRepository(DecoderOptions options, string? configYaml = null)
    {
        var repo = Paths.NewTempDirectory("kv-hf");
        DecoderModelWriter.Write(options, Path.Combine(repo, "lm", "1"));
        if (configYaml is not null)
        {
            File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"), configYaml);
        }
        return repo;
    }

    private static readonly DecoderOptions Export = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 512, MaxPositions = 256 };

    [Fact]
    public async Task Sixteen_concurrent_streams_of_a_hugging_face_export_each_equal_their_single_stream_output()
    {
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(Export));
        const string text = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief";
        var prompts = Enumerable.Range(0, 16).Select(i => text[..(4 + (i * 9 % (text.Length - 4)))]).ToArray();
        string Body(string prompt, int i) => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = "lm",
            ["prompt"] = prompt,
            ["max_tokens"] = 24,
            ["stream"] = true,
            // Half greedy, half seeded sampling.
            ["temperature"] = i % 2 == 0 ? 0 : 0.8,
            ["seed"] = 100 + i,
        });
        var single = new List<string>();
        for (var i = 0; i < prompts.Length; i++)
        {
            single.Add(await StreamAsync(server.Http, Body(prompts[i], i)));
        }
        var together = await Task.WhenAll(prompts.Select((p, i) => StreamAsync(server.Http, Body(p, i))));
        for (var i = 0; i < prompts.Length; i++)
        {
            output.WriteLine($"{prompts[i].Length,3} prompt chars -> {JsonSerializer.Serialize(single[i])}");
            Assert.Equal(single[i], together[i]);
        }
        var batcher = Assert.IsType<ContinuousBatcher>(server.Repository.GetReady("lm", "").Runner);
        Assert.True(batcher.LargestStep > 1, $"no step ran more than one sequence (largest {batcher.LargestStep})");
        Assert.Contains(single, s => s.Length > 0);
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 1)]
    [InlineData(true, 2)]
    public async Task A_cache_too_small_for_every_stream_at_once_preempts_and_every_stream_still_ends_with_its_single_stream_output(bool genAi, int instances)
    {
        // 96 tokens of batch region (and a 96-token prefill region) per instance: 8 streams of prompts of 20-40
        // characters and 40 tokens each cannot all hold their caches at once, so rows are preempted and recomputed (with
        // two instances, a preempted stream may resume on the other); a small token budget reads the prompts in chunks
        // beside them. Each instance's loop reads every instance's cache usage for the gauge while the others run.
        var options = genAi ? Export with { Layout = DecoderLayout.GenAi, MaxPositions = 96 } : Export with { MaxPositions = 96 };
        var perToken = (long)options.Layers * 2 * options.KvHeads * (options.DModel / options.Heads) * 4;
        var copies = genAi ? 1 : 2;
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(options,
            $"instance_group: [{{count: {instances}, kind: KIND_CPU}}]\ngeneration:\n  kv_cache_bytes: {copies * (96 + 96) * perToken}\n  max_running_sequences: 8\n  max_num_batched_tokens: 16\n"));
        const string text = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness";
        var prompts = Enumerable.Range(0, 8).Select(i => text[(i * 7)..((i * 7) + 20 + (i * 3 % 21))]).ToArray();
        string Body(string prompt, int i) => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = "lm", ["prompt"] = prompt, ["max_tokens"] = 40, ["stream"] = true, ["ignore_eos"] = true,
            ["temperature"] = i % 2 == 0 ? 0 : 0.8, ["seed"] = 7 + i,
        });
        var single = new List<string>();
        for (var i = 0; i < prompts.Length; i++)
        {
            single.Add(await StreamAsync(server.Http, Body(prompts[i], i)));
        }
        using var metrics = server.NewMetricsClient();
        static double Sample(string scrape, string name) => double.Parse(
            scrape.Split('\n').Single(l => l.StartsWith(name + "{model_name=\"lm\"", StringComparison.Ordinal)).Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
        var before = await metrics.GetStringAsync("/metrics");
        var together = await Task.WhenAll(prompts.Select((p, i) => StreamAsync(server.Http, Body(p, i))));
        var after = await metrics.GetStringAsync("/metrics");
        var preemptions = Sample(after, "vllm:num_preemptions_total") - Sample(before, "vllm:num_preemptions_total");
        output.WriteLine($"{(genAi ? "genai" : "optimum")}, {instances} instance(s): {preemptions} preemptions; prefix cache queries {Sample(after, "vllm:prefix_cache_queries_total")}, hits {Sample(after, "vllm:prefix_cache_hits_total")}");
        Assert.Equal(single, together);
        Assert.True(preemptions > 0, "no stream was preempted");
        Assert.Contains("# TYPE vllm:num_preemptions counter", after, StringComparison.Ordinal);
        Assert.Contains("# TYPE vllm:prefix_cache_hits counter", after, StringComparison.Ordinal);
        Assert.True(Sample(after, "vllm:prefix_cache_queries_total") > 0);
        Assert.Equal(0, Sample(after, "vllm:kv_cache_usage_perc"));
    }

    [Theory]
    [InlineData("hub")]
    [InlineData("legacy-merged")]
    [InlineData("fp16")]
    public async Task Other_export_layouts_serve_concurrent_streams_equal_to_their_single_stream_output(string layout)
    {
        var options = layout switch
        {
            "hub" => Export with { Layout = DecoderLayout.Hub, ExternalData = true },
            "legacy-merged" => Export with { LegacyMerged = true },
            _ => Export with { Precision = DecoderPrecision.Float16 },
        };
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(options));
        var config = server.Repository.GetReady("lm", "").Config!;
        output.WriteLine($"{layout}: {config.DefaultModelFilename}");
        string[] prompts = ["Once upon a time", "The", "It was a dark and stormy night; the rain fell", "Call me"];
        string Body(string prompt) => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = "lm", ["prompt"] = prompt, ["max_tokens"] = 12, ["stream"] = true, ["temperature"] = 0, ["ignore_eos"] = true,
        });
        var single = new List<string>();
        foreach (var prompt in prompts)
        {
            single.Add(await StreamAsync(server.Http, Body(prompt)));
        }
        var together = await Task.WhenAll(prompts.Select(p => StreamAsync(server.Http, Body(p))));
        Assert.Equal(single, together);
        Assert.Equal(layout == "legacy-merged", !config.Generation!.KvCache!.HasPositionIds);
        Assert.Equal(layout == "fp16" ? Tensors.DataType.Fp16 : Tensors.DataType.Fp32, config.Generation.LogitsType);
    }

    [Fact]
    public async Task A_hugging_face_export_takes_token_id_prompts_and_refuses_an_over_long_prompt_naming_the_numbers()
    {
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(Export));
        var ids = string.Join(",", Enumerable.Range(0, 20).Select(i => 300 + i));
        var (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            $$"""{"model": "lm", "prompt": [{{ids}}], "max_tokens": 8, "temperature": 0}""");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(20, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // max_model_len is config.json's max_position_embeddings, 256.
        var longIds = string.Join(",", Enumerable.Range(0, 250).Select(i => 300 + (i % 200)));
        (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            $$"""{"model": "lm", "prompt": [{{longIds}}], "max_tokens": 10}""");
        Assert.Equal(400, (int)response.StatusCode);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("256", message, StringComparison.Ordinal);
        Assert.Contains("260", message, StringComparison.Ordinal);

        // vLLM's gauges, under vLLM's names: nothing running or waiting, and the finished request's cache freed.
        using var metrics = server.NewMetricsClient();
        var scrape = await metrics.GetStringAsync("/metrics");
        Assert.Contains("vllm:num_requests_running{model_name=\"lm\",version=\"1\"} 0\n", scrape, StringComparison.Ordinal);
        Assert.Contains("vllm:num_requests_waiting{model_name=\"lm\",version=\"1\"} 0\n", scrape, StringComparison.Ordinal);
        Assert.Contains("vllm:kv_cache_usage_perc{model_name=\"lm\",version=\"1\"} 0\n", scrape, StringComparison.Ordinal);
        Assert.Contains("# TYPE vllm:kv_cache_usage_perc gauge", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_that_can_never_fit_in_the_cache_is_a_400_naming_the_numbers_and_a_fitting_one_is_served()
    {
        // A budget of 256 tokens of cache per instance (two halves of a 64-token batch region and a 64-token prefill
        // region): one sequence may reach at most 64 tokens, though the context (config.json) is 256.
        var perToken = (long)Export.Layers * 2 * Export.KvHeads * (Export.DModel / Export.Heads) * 4;
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(Export, $"generation:\n  kv_cache_bytes: {256 * perToken}\n"));
        var forty = string.Join(",", Enumerable.Range(0, 40).Select(i => 300 + i));
        var (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            $$"""{"model": "lm", "prompt": [{{forty}}], "max_tokens": 30}""");
        Assert.Equal(400, (int)response.StatusCode);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("70 tokens of KV cache", message, StringComparison.Ordinal);
        Assert.Contains("at most 64", message, StringComparison.Ordinal);
        (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            $$"""{"model": "lm", "prompt": [{{forty}}], "max_tokens": 20, "ignore_eos": true}""");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(20, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task A_request_waits_for_cache_memory_and_cancelling_the_running_stream_frees_it_at_once()
    {
        // A batch region of 1,024 tokens: a second 600-token prompt does not fit beside the first one's 600 (memory is
        // taken by what the rows hold), so it waits for memory until the first leaves.
        var options = Export with { MaxPositions = 1024 };
        var perToken = (long)options.Layers * 2 * options.KvHeads * (options.DModel / options.Heads) * 4;
        await using var server = await RunningServer.StartAsync(HuggingFaceRepository(options, $"generation:\n  kv_cache_bytes: {4 * 1024 * perToken}\n"));
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        var batcher = Assert.IsType<ContinuousBatcher>(server.Repository.GetReady("lm", "").Runner);
        using var cancelFirst = new CancellationTokenSource();
        GenerationRequest Request(int maxTokens) => new()
        {
            PromptTokenIds = Enumerable.Range(0, 600).Select(i => 300 + (i % 200)).ToList(),
            MaxTokens = maxTokens,
            IgnoreEos = true,
            Sampling = new SamplingParameters { Temperature = 0 },
        };
        var first = await generator.GenerateAsync("lm", null, Request(400), cancelFirst.Token);
        Assert.True(await first.Chunks.WaitToReadAsync());
        var second = await generator.GenerateAsync("lm", null, Request(8), CancellationToken.None);
        await WaitUntil(() => batcher.WaitingCount == 1, "the second request never waited for memory");
        Assert.Equal(1, batcher.RunningCount);
        Assert.True(batcher.CacheUsage > 0.55, $"cache usage {batcher.CacheUsage}");

        cancelFirst.Cancel();
        var (_, usage, finish) = await ShakespeareGenerationTests.CollectAsync(second);
        Assert.Equal((8, FinishReason.Length), (usage.CompletionTokens, finish));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await ShakespeareGenerationTests.CollectAsync(first));
        await WaitUntil(() => batcher.RunningCount == 0 && batcher.CacheUsage == 0, "the cache was not freed");
    }

    internal static async Task WaitUntil(Func<bool> condition, string message)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }
        Assert.True(condition(), message);
    }

    [Fact]
    public async Task The_configuration_holds_the_cache_derived_from_the_graph_and_the_context_from_config_json()
    {
        await using var server = await RunningServer.StartAsync(Repository(Model));
        var version = server.Repository.GetReady("lm", "");
        var kv = version.Config!.Generation!.KvCache!;
        Assert.Equal((2, 2, 16, Tensors.DataType.Fp32, true), (kv.Layers, kv.KvHeads, kv.HeadSize, kv.CacheType, kv.HasPositionIds));
        // The context length comes from the export's config.json (max_position_embeddings), beneath config.yaml.
        Assert.Equal(Model.MaxPositions, version.Config.Generation.MaxModelLen);
        Assert.Equal("config.json", version.Config.Provenance["generation.max_model_len"]);
        Assert.Equal("config.yaml", version.Config.Provenance["generation.tokenizer"]);
    }

    internal static async Task<string> StreamAsync(HttpClient http, string body)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/v1/completions", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var result = new System.Text.StringBuilder();
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }
            using var chunk = JsonDocument.Parse(line["data: ".Length..]);
            foreach (var choice in chunk.RootElement.GetProperty("choices").EnumerateArray())
            {
                result.Append(choice.GetProperty("text").GetString());
            }
        }
        return result.ToString();
    }
}
