using System.Net;
using System.Text.Json;
using InferenceServer.Tests.Infrastructure;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;
using Message = InferenceServer.Generation.Chat.ChatMessage;

namespace InferenceServer.Tests.Integration;

/// <summary>The OpenAI-compatible chat completions route, whole and streamed.</summary>
public sealed class OpenAiChatTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    [Theory]
    [InlineData("/v1")]
    [InlineData("/openai/v1")]
    public async Task Chat_completion_returns_the_assistant_message(string prefix)
    {
        var (response, body) = await PostJsonAsync(Http, prefix + "/chat/completions",
            $$"""{"model": "tiny", "messages": [{"role": "user", "content": "chat whole {{prefix}}"}]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal("tiny", body.GetProperty("model").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(GenerationServerFixture.Text, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(12, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        var request = fixture.Fake.Single($"chat whole {prefix}").Request;
        Assert.Equal("chat", request.Operation);
        Assert.Null(request.Prompt);
        Assert.Equal([new Message("user", $"chat whole {prefix}")], request.Messages);
    }

    [Fact]
    public async Task Messages_with_content_parts_reach_the_request()
    {
        var (response, _) = await PostJsonAsync(Http, "/v1/chat/completions", """
            {"model": "tiny", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "parts one"}, {"type": "text", "text": "parts two"}]},
                {"role": "assistant", "content": null},
                {"role": "user", "content": []}]}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            [new Message("system", "Be brief."), new Message("user", "parts one\nparts two"), new Message("assistant", ""), new Message("user", "")],
            fixture.Fake.Single("parts one").Request.Messages);
    }

    [Fact]
    public async Task Max_completion_tokens_wins_over_max_tokens()
    {
        await PostJsonAsync(Http, "/v1/chat/completions",
            """{"model": "tiny", "max_tokens": 50, "max_completion_tokens": 9, "messages": [{"role": "user", "content": "both limits"}]}""");
        Assert.Equal(9, fixture.Fake.Single("both limits").Request.MaxTokens);
        await PostJsonAsync(Http, "/v1/chat/completions",
            """{"model": "tiny", "max_completion_tokens": 11, "max_tokens": 50, "messages": [{"role": "user", "content": "reversed order"}]}""");
        Assert.Equal(11, fixture.Fake.Single("reversed order").Request.MaxTokens);
        await PostJsonAsync(Http, "/v1/chat/completions",
            """{"model": "tiny", "max_tokens": 50, "max_completion_tokens": null, "messages": [{"role": "user", "content": "old name only"}]}""");
        Assert.Equal(50, fixture.Fake.Single("old name only").Request.MaxTokens);
    }

    [Fact]
    public async Task Chat_sampling_parameters_reach_the_request()
    {
        await PostJsonAsync(Http, "/v1/chat/completions",
            """{"model": "tiny", "temperature": 0.25, "top_p": 0.5, "top_k": 3, "seed": -1, "stop": "###", "messages": [{"role": "user", "content": "chat params"}]}""");
        var request = fixture.Fake.Single("chat params").Request;
        Assert.Equal(0.25f, request.Sampling.Temperature);
        Assert.Equal(0.5f, request.Sampling.TopP);
        Assert.Equal(3, request.Sampling.TopK);
        Assert.Equal(ulong.MaxValue, request.Sampling.Seed);
        Assert.Equal(["###"], request.Stop);
    }

    [Fact]
    public async Task Streamed_chat_starts_with_the_role_and_adds_up_to_the_whole_message()
    {
        var response = await Http.PostAsync("/v1/chat/completions", Json("""
            {"model": "tiny", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "chat stream"}]}
            """));
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = Events(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Parse).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));

        var first = chunks[0].GetProperty("choices")[0].GetProperty("delta");
        Assert.Equal("assistant", first.GetProperty("role").GetString());
        Assert.Equal("", first.GetProperty("content").GetString());

        var content = chunks[1..^1];
        Assert.Equal(["Hel", "lo", " wor", "ld"], content.Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal("stop", content[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(content[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.All(chunks[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));

        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        Assert.Equal(5, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var (_, whole) = await PostJsonAsync(Http, "/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "user", "content": "chat again"}]}""");
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(),
            string.Concat(content.Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString())));
    }

    [Fact]
    public async Task Streamed_chat_whose_last_piece_is_empty_ends_with_an_empty_delta_and_the_reason()
    {
        var response = await Http.PostAsync("/v1/chat/completions", Json("""
            {"model": "tiny-length", "stream": true, "messages": [{"role": "user", "content": "chat length"}]}
            """));
        var events = Events(await response.Content.ReadAsStringAsync());
        var last = Parse(events[^2]).GetProperty("choices")[0];
        Assert.Empty(last.GetProperty("delta").EnumerateObject());
        Assert.Equal("length", last.GetProperty("finish_reason").GetString());
    }
}
