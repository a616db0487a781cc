using System.Net;
using System.Text.Json;
using InferenceServer.ModelBuilder;
using InferenceServer.Observability;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The generated sample <c>bigram_lm</c> (ONNX Runtime) as <c>bigram_lm</c>, as <c>bigram_stop</c> (stop_token_ids:
/// the space) and as <c>bigram_long</c> (a max_tokens_limit high enough that a generation the tests cut short cannot end
/// on its own first).
/// </summary>
public sealed class TokenPromptServerFixture : IAsyncLifetime
{
    public const string StopModel = "bigram_stop";
    public const string LongModel = "bigram_long";
    public const int Endless = 100_000_000;

    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var repo = Paths.NewTempDirectory("token-prompts");
        void Add(string name, string extra)
        {
            SampleModels.Bigram().Save(Path.Combine(repo, name, "1", "model.onnx"));
            File.WriteAllText(Path.Combine(repo, name, "config.yaml"), SampleModels.BigramConfigYaml + extra);
        }
        Add(SampleModels.BigramName, "");
        Add(StopModel, $"  stop_token_ids: [{SampleModels.BigramVocabulary.IndexOf(' ', StringComparison.Ordinal)}]\n");
        Add(LongModel, $"  max_tokens_limit: {Endless}\n");
        Server = await RunningServer.StartAsync(repo);
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// Token-id prompts on <c>/v1/completions</c> over a real model: a list of ids generates what the text they encode
/// generates (greedy), a list of prompts (texts or id lists) gets one choice per prompt with its index, whole and
/// streamed, and every malformed or out-of-vocabulary prompt is a 400 naming the problem. The model's stop_token_ids end
/// generation with finish_reason "stop".
/// </summary>
public sealed class OpenAiTokenPromptTests(TokenPromptServerFixture fixture) : IClassFixture<TokenPromptServerFixture>
{
    private const string Model = SampleModels.BigramName;

    private HttpClient Http => fixture.Server.Http;

    /// <summary>The ids of <paramref name="text"/> in bigram_lm's character vocabulary, as a JSON array.</summary>
    private static string Ids(string text) =>
        "[" + string.Join(", ", text.Select(c =>
        {
            var id = SampleModels.BigramVocabulary.IndexOf(c, StringComparison.Ordinal);
            Assert.True(id >= 0, $"'{c}' is not in the vocabulary");
            return id;
        })) + "]";

    private static string Greedy(string prompt, int tokens) => SampleModels.BigramGreedy(prompt[^1], tokens);

    [Fact]
    public async Task A_token_prompt_generates_what_the_text_it_encodes_generates()
    {
        const string text = "Tell me";
        var (byIds, ids) = await PostJsonAsync(Http, "/v1/completions", $$"""{"model": "{{Model}}", "prompt": {{Ids(text)}}, "max_tokens": 20, "temperature": 0}""");
        var (byText, words) = await PostJsonAsync(Http, "/v1/completions", $$"""{"model": "{{Model}}", "prompt": "{{text}}", "max_tokens": 20, "temperature": 0}""");
        Assert.Equal(HttpStatusCode.OK, byIds.StatusCode);
        Assert.Equal(HttpStatusCode.OK, byText.StatusCode);

        var choice = Assert.Single(ids.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal(Greedy(text, 20), choice.GetProperty("text").GetString());
        Assert.Equal(words.GetProperty("choices")[0].GetProperty("text").GetString(), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        // The ids are the prompt as they are: seven of them, as the text's seven characters.
        Assert.Equal(7, ids.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(20, ids.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(27, ids.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        Assert.Equal(words.GetProperty("usage").GetRawText(), ids.GetProperty("usage").GetRawText());
    }

    [Fact]
    public async Task Several_prompts_get_one_choice_each_in_order_as_id_lists_or_texts()
    {
        string[] prompts = ["The", "A", "No one", "Each"];
        const int tokens = 15;
        var idLists = "[" + string.Join(", ", prompts.Select(Ids)) + "]";
        var texts = "[" + string.Join(", ", prompts.Select(p => $"\"{p}\"")) + "]";
        foreach (var prompt in (string[])[idLists, texts])
        {
            var (response, body) = await PostJsonAsync(Http, "/v1/completions", $$"""{"model": "{{Model}}", "prompt": {{prompt}}, "max_tokens": {{tokens}}, "temperature": 0}""");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text_completion", body.GetProperty("object").GetString());
            var choices = body.GetProperty("choices").EnumerateArray().ToList();
            Assert.Equal([0, 1, 2, 3], choices.Select(c => c.GetProperty("index").GetInt32()));
            Assert.Equal(prompts.Select(p => Greedy(p, tokens)), choices.Select(c => c.GetProperty("text").GetString()));
            Assert.All(choices, c => Assert.Equal("length", c.GetProperty("finish_reason").GetString()));
            // Usage adds up every choice's.
            var usage = body.GetProperty("usage");
            Assert.Equal(prompts.Sum(p => p.Length), usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(prompts.Length * tokens, usage.GetProperty("completion_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task Streamed_prompts_interleave_their_choices_and_each_adds_up_to_its_whole_text()
    {
        string[] prompts = ["When", "Some", "At"];
        const int tokens = 24;
        var response = await Http.PostAsync("/v1/completions", Json($$$"""
            {"model": "{{{Model}}}", "prompt": [{{{string.Join(", ", prompts.Select(Ids))}}}], "max_tokens": {{{tokens}}}, "temperature": 0,
             "stream": true, "stream_options": {"include_usage": true}}
            """));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^2].Select(Parse).ToList();
        var usageChunk = Parse(events[^2]);

        var id = chunks[0].GetProperty("id").GetString();
        Assert.All(chunks, c =>
        {
            Assert.Equal(id, c.GetProperty("id").GetString());
            Assert.Equal("text_completion", c.GetProperty("object").GetString());
            Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind);
        });
        var choices = chunks.Select(c => Assert.Single(c.GetProperty("choices").EnumerateArray())).ToList();
        for (var i = 0; i < prompts.Length; i++)
        {
            var mine = choices.Where(c => c.GetProperty("index").GetInt32() == i).ToList();
            Assert.Equal(Greedy(prompts[i], tokens), string.Concat(mine.Select(c => c.GetProperty("text").GetString())));
            // Its finish reason comes once, on its last chunk.
            Assert.All(mine[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("finish_reason").ValueKind));
            Assert.Equal("length", mine[^1].GetProperty("finish_reason").GetString());
        }
        Assert.All(choices, c => Assert.InRange(c.GetProperty("index").GetInt32(), 0, prompts.Length - 1));

        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        Assert.Equal(id, usageChunk.GetProperty("id").GetString());
        var usage = usageChunk.GetProperty("usage");
        Assert.Equal(prompts.Sum(p => p.Length), usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(prompts.Length * tokens, usage.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task A_streamed_token_prompt_streams_the_text_of_its_text()
    {
        const string text = "Then the";
        var response = await Http.PostAsync("/v1/completions", Json($$"""{"model": "{{Model}}", "prompt": {{Ids(text)}}, "max_tokens": 16, "temperature": 0, "stream": true}"""));
        var events = Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => Assert.Single(Parse(e).GetProperty("choices").EnumerateArray())).ToList();
        Assert.All(choices, c => Assert.Equal(0, c.GetProperty("index").GetInt32()));
        Assert.Equal(Greedy(text, 16), string.Concat(choices.Select(c => c.GetProperty("text").GetString())));
        Assert.Equal("length", choices[^1].GetProperty("finish_reason").GetString());
    }

    public static TheoryData<string, string> BadPrompts => new()
    {
        { "[\"1\", 2]", "prompt[1] must be a string like prompt[0]" },
        { "[[\"1\", \"2\"]]", "prompt[0][0] must be a token id (a non-negative integer), not a string" },
        { "[1, 2.5]", "prompt[1] must be a token id (a non-negative integer), not 2.5" },
        { "[[[1, 2]]]", "prompt[0][0] must be a token id (a non-negative integer), not an array" },
        { "[]", "\"prompt\" is an empty array" },
        { "[[1], []]", "prompt[1] is an empty array of token ids" },
        { "[0, -3]", "prompt[1] must be a token id (a non-negative integer), not -3" },
        { "[1, [2]]", "prompt[1] must be a token id (a non-negative integer), not an array" },
        { "[2, 65]", "prompt token id 65 (at position 1) is outside the model's vocabulary: ids are 0 to 64" },
        { "[[2], [3, 4, 99]]", "prompt[1]: prompt token id 99 (at position 2) is outside the model's vocabulary: ids are 0 to 64" },
        { "[4294967296]", "prompt[0] is 4294967296, a token id outside any vocabulary" },
    };

    [Theory]
    [MemberData(nameof(BadPrompts))]
    public async Task Every_malformed_or_out_of_vocabulary_prompt_is_a_400_naming_the_problem(string prompt, string message)
    {
        foreach (var stream in (bool[])[false, true])
        {
            var (response, body) = await PostJsonAsync(Http, "/v1/completions",
                $$"""{"model": "{{Model}}", "prompt": {{prompt}}, "max_tokens": 4, "stream": {{(stream ? "true" : "false")}}}""");
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = body.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("prompt", error.GetProperty("param").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
            Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_max_tokens_beyond_the_limit_is_named_as_max_tokens_not_as_a_prompt()
    {
        var (response, body) = await PostJsonAsync(Http, "/v1/completions", $$"""{"model": "{{Model}}", "prompt": [[1], [2]], "max_tokens": 99999}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = body.GetProperty("error");
        Assert.Equal("max_tokens must be between 1 and 4096, not 99999", error.GetProperty("message").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
    }

    [Fact]
    public async Task Text_the_vocabulary_cannot_represent_is_named_as_the_prompt_among_several()
    {
        var (response, body) = await PostJsonAsync(Http, "/v1/completions", $$"""{"model": "{{Model}}", "prompt": ["fine", "caf\u00e9"], "max_tokens": 2}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = body.GetProperty("error");
        Assert.StartsWith("prompt[1]: ", error.GetProperty("message").GetString());
        Assert.Contains("é", error.GetProperty("message").GetString());
        Assert.Equal("prompt", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task A_refused_prompt_cancels_the_prompts_before_it()
    {
        var metrics = fixture.Server.Services.GetRequiredService<ServerMetrics>();
        var cancelled = metrics.GenerationRequests.WithLabels(TokenPromptServerFixture.LongModel, "1", "cancelled");
        var before = cancelled.Value;
        // The first prompt would run for a hundred million tokens; the second is refused, so the first is stopped.
        var (response, body) = await PostJsonAsync(Http, "/v1/completions",
            $$"""{"model": "{{TokenPromptServerFixture.LongModel}}", "prompt": [[1, 2], [3, 70]], "max_tokens": {{TokenPromptServerFixture.Endless}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("prompt[1]: prompt token id 70", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (cancelled.Value < before + 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "the first prompt's generation was not cancelled");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_stop_token_id_ends_the_text_with_finish_reason_stop()
    {
        const string prompt = "The";
        var full = Greedy(prompt, 40);
        var space = full.IndexOf(' ', StringComparison.Ordinal);
        Assert.True(space >= 0, $"the greedy text has no space to stop at: {full}");

        var (_, stopped) = await PostJsonAsync(Http, "/v1/completions",
            $$"""{"model": "{{TokenPromptServerFixture.StopModel}}", "prompt": "{{prompt}}", "max_tokens": 40, "temperature": 0}""");
        var choice = stopped.GetProperty("choices")[0];
        Assert.Equal(full[..space], choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        // The stop token is generated (and counted), not returned.
        Assert.Equal(space + 1, stopped.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var (_, through) = await PostJsonAsync(Http, "/v1/completions",
            $$"""{"model": "{{TokenPromptServerFixture.StopModel}}", "prompt": "{{prompt}}", "max_tokens": 40, "temperature": 0, "ignore_eos": true}""");
        Assert.Equal(full, through.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", through.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }
}
