using System.Text.Json;
using InferenceServer.Backends;
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

    private static readonly DecoderOptions Model = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = 256 };

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

    [Fact]
    public async Task Sixteen_concurrent_streams_of_different_prompt_lengths_each_equal_their_single_stream_output()
    {
        await using var server = await RunningServer.StartAsync(Repository(Model));
        var prompts = Enumerable.Range(0, 16).Select(i => new string(Enumerable.Range(0, 3 + (i * 7 % 41)).Select(j => Vocabulary[(i * 31 + j * 7) % Vocabulary.Length]).ToArray())).ToArray();
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
            output.WriteLine($"{prompts[i].Length,3} prompt chars -> {single[i]}");
            Assert.Equal(single[i], together[i]);
        }
        var batcher = Assert.IsType<ContinuousBatcher>(server.Repository.GetReady("lm", "").Runner);
        Assert.True(batcher.LargestStep > 1, $"no step ran more than one sequence (largest {batcher.LargestStep})");
        Assert.All(single, text => Assert.Equal(24, text.Length));
    }

    [Fact]
    public async Task A_prompt_that_can_never_fit_in_the_cache_is_a_400_naming_the_numbers_and_a_fitting_one_is_served()
    {
        // Room for 2 x 64 tokens of cache per instance: one sequence may have at most 64 (prompt + max_tokens).
        var perToken = (long)Model.Layers * 2 * Model.KvHeads * (Model.DModel / Model.Heads) * 4;
        await using var server = await RunningServer.StartAsync(Repository(Model, $"  kv_cache_bytes: {2 * ((2 * 64) + 64) * perToken}\n  max_model_len: 64\n"));
        var (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            """{"model": "lm", "prompt": "a prompt of forty characters, more or ..", "max_tokens": 30}""");
        Assert.Equal(400, (int)response.StatusCode);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("70", message, StringComparison.Ordinal);
        Assert.Contains("64", message, StringComparison.Ordinal);
        (response, body) = await GenerationHttp.PostJsonAsync(server.Http, "/v1/completions",
            """{"model": "lm", "prompt": "a prompt of forty characters, more or ..", "max_tokens": 20}""");
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(20, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task The_config_endpoint_shows_the_cache_derived_from_the_graph()
    {
        await using var server = await RunningServer.StartAsync(Repository(Model));
        var version = server.Repository.GetReady("lm", "");
        var kv = version.Config!.Generation!.KvCache!;
        Assert.Equal((2, 2, 16, Tensors.DataType.Fp32, true), (kv.Layers, kv.KvHeads, kv.HeadSize, kv.CacheType, kv.HasPositionIds));
        Assert.Equal(GenerationSettings.DefaultMaxModelLen, version.Config.Generation.MaxModelLen);
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
