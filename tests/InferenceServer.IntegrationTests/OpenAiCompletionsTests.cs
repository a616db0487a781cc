using System.Net;
using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Tests.Infrastructure;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>The OpenAI-compatible models and completions routes, at /v1 and /openai/v1, whole and streamed.</summary>
public sealed class OpenAiCompletionsTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    public static TheoryData<string> Prefixes => new() { "/v1", "/openai/v1" };

    [Theory]
    [MemberData(nameof(Prefixes))]
    public async Task Models_are_listed_and_fetched(string prefix)
    {
        var list = Parse(await Http.GetStringAsync(prefix + "/models"));
        Assert.Equal("list", list.GetProperty("object").GetString());
        var ids = list.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(fixture.Fake.ListModels().Select(m => m.Name), ids);
        var tiny = list.GetProperty("data").EnumerateArray().Single(m => m.GetProperty("id").GetString() == "tiny");
        Assert.Equal("model", tiny.GetProperty("object").GetString());
        Assert.Equal(FakeTextGenerator.Created, tiny.GetProperty("created").GetInt64());
        Assert.Equal("inference-server", tiny.GetProperty("owned_by").GetString());

        var one = Parse(await Http.GetStringAsync(prefix + "/models/tiny"));
        Assert.Equal("tiny", one.GetProperty("id").GetString());
        Assert.Equal("model", one.GetProperty("object").GetString());

        var missing = await Http.GetAsync(prefix + "/models/no-such-model");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var error = Parse(await missing.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal("not_found_error", error.GetProperty("type").GetString());
        Assert.Contains("no-such-model", error.GetProperty("message").GetString());
    }

    [Theory]
    [MemberData(nameof(Prefixes))]
    public async Task Completion_returns_the_whole_text_with_finish_reason_and_usage(string prefix)
    {
        var (response, body) = await PostJsonAsync(Http, prefix + "/completions", $$"""{"model": "tiny", "prompt": "whole text {{prefix}}"}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.InRange(body.GetProperty("created").GetInt64(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 300, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 5);
        Assert.Equal("tiny", body.GetProperty("model").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal(GenerationServerFixture.Text, choice.GetProperty("text").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(7, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(12, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(body.GetProperty("id").GetString(), fixture.Fake.Single($"whole text {prefix}").Request.Id);
    }

    [Fact]
    public async Task Length_finish_reason_and_its_usage_propagate()
    {
        var (_, body) = await PostJsonAsync(Http, "/v1/completions", """{"model": "tiny-length", "prompt": "length"}""");
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("abcd", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(2, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Prompt_may_be_an_array_of_one_string()
    {
        var (response, body) = await PostJsonAsync(Http, "/v1/completions", """{"model": "tiny", "prompt": ["in an array"]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(GenerationServerFixture.Text, body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("in an array", fixture.Fake.Single("in an array").Request.Prompt);
    }

    [Fact]
    public async Task Parameters_reach_the_generation_request()
    {
        var (response, _) = await PostJsonAsync(Http, "/v1/completions", """
            {"model": "tiny", "prompt": "params", "max_tokens": 17, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
             "seed": 1234, "stop": ["\n", "END"], "ignore_eos": true, "user": "someone", "n": 1, "echo": false,
             "logprobs": null, "presence_penalty": 0, "frequency_penalty": 0.0}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var request = fixture.Fake.Single("params").Request;
        Assert.Equal("params", request.Prompt);
        Assert.Null(request.Messages);
        Assert.Equal(17, request.MaxTokens);
        Assert.Equal(0.5f, request.Sampling.Temperature);
        Assert.Equal(0.9f, request.Sampling.TopP);
        Assert.Equal(40, request.Sampling.TopK);
        Assert.Equal(1234UL, request.Sampling.Seed);
        Assert.Equal(["\n", "END"], request.Stop);
        Assert.True(request.IgnoreEos);
        Assert.Equal("text_completion", request.Operation);

        await PostJsonAsync(Http, "/v1/completions", """{"model": "tiny", "prompt": "defaults", "stop": "STOP", "top_k": -1, "temperature": 0}""");
        var defaults = fixture.Fake.Single("defaults").Request;
        Assert.Null(defaults.MaxTokens);
        Assert.Equal(0f, defaults.Sampling.Temperature);
        Assert.Equal(1f, defaults.Sampling.TopP);
        Assert.Equal(0, defaults.Sampling.TopK);
        Assert.Null(defaults.Sampling.Seed);
        Assert.Equal(["STOP"], defaults.Stop);
        Assert.False(defaults.IgnoreEos);
    }

    [Theory]
    [MemberData(nameof(Prefixes))]
    public async Task Streamed_completion_is_framed_as_server_sent_events_and_adds_up_to_the_whole_text(string prefix)
    {
        var response = await Http.PostAsync(prefix + "/completions", Json("""{"model": "tiny", "prompt": "stream me", "stream": true}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.CacheControl?.NoCache);
        var events = Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Parse).ToList();
        // The empty chunk is skipped; the last carries the finish reason.
        Assert.Equal(["Hel", "lo", " wor", "ld"], chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal([null, null, null, "stop"], chunks.Select(c => c.GetProperty("choices")[0].GetProperty("finish_reason").GetString()));
        Assert.All(chunks, c =>
        {
            Assert.Equal("text_completion", c.GetProperty("object").GetString());
            Assert.Equal(chunks[0].GetProperty("id").GetString(), c.GetProperty("id").GetString());
            Assert.Equal("tiny", c.GetProperty("model").GetString());
            Assert.False(c.TryGetProperty("usage", out _), "usage is only sent with stream_options.include_usage");
        });
        var (_, whole) = await PostJsonAsync(Http, prefix + "/completions", """{"model": "tiny", "prompt": "not streamed"}""");
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(),
            string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task Include_usage_adds_a_final_chunk_with_no_choices()
    {
        var response = await Http.PostAsync("/v1/completions",
            Json("""{"model": "tiny-length", "prompt": "usage", "stream": true, "stream_options": {"include_usage": true}}"""));
        var events = Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Parse).ToList();

        var usageChunk = chunks[^1];
        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        Assert.Equal(2, usageChunk.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(5, usageChunk.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var content = chunks[..^1];
        Assert.All(content, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        // The finish reason arrives on a chunk of its own when the engine's last piece is empty.
        Assert.Equal(["ab", "cd", ""], content.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("length", content[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Engine_failure_mid_stream_is_an_error_event_and_the_end()
    {
        var response = await Http.PostAsync("/v1/completions", Json("""{"model": "broken", "prompt": "fail", "stream": true}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Events(await response.Content.ReadAsStringAsync());
        Assert.Equal(2, events.Count);
        Assert.Equal("par", Parse(events[0]).GetProperty("choices")[0].GetProperty("text").GetString());
        var error = Parse(events[1]).GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Contains("device lost", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Engine_failure_before_streaming_is_a_500_in_OpenAI_shape()
    {
        var (response, body) = await PostJsonAsync(Http, "/v1/completions", """{"model": "broken", "prompt": "whole fail"}""");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("server_error", body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Client_disconnecting_mid_stream_cancels_the_generation()
    {
        // No draining on dispose: closing the response closes the connection at once, as a client that goes away does.
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = Http.BaseAddress };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json("""{"model": "slow", "prompt": "disconnect", "stream": true}""") };
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var first = await reader.ReadLineAsync();
            Assert.Contains("\"first\"", first);
            Assert.False(fixture.Fake.Single("disconnect").Cancelled.Task.IsCompleted);
        }
        client.Dispose();
        await fixture.Fake.Single("disconnect").Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
