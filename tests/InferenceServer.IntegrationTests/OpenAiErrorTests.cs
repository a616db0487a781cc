using System.Net;
using System.Text.Json;
using InferenceServer.Tests.Infrastructure;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>OpenAI routes answer mistakes in OpenAI's error shape, with the server's status codes; never a 500 for bad input.</summary>
public sealed class OpenAiErrorTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    private const string Chat = "/v1/chat/completions";
    private const string Completions = "/v1/completions";

    public static TheoryData<string, string, int, string?, string> Mistakes => new()
    {
        // path, body, status, param, a word the message must contain
        { Completions, """{"model": "tiny", "prompt": """, 400, null, "JSON" },
        { "/openai/v1/completions", """{"model": "tiny" "prompt": "x"}""", 400, null, "JSON" },
        { Chat, """[{"model": "tiny"}]""", 400, null, "object" },
        { Completions, "", 400, null, "empty" },
        { Completions, """{"prompt": "x"}""", 400, "model", "model" },
        { Chat, """{"model": 7, "messages": [{"role": "user", "content": "x"}]}""", 400, "model", "model" },
        { Completions, """{"model": "tiny"}""", 400, "prompt", "prompt" },
        { Completions, """{"model": "tiny", "prompt": []}""", 400, "prompt", "empty array" },
        { Completions, """{"model": "tiny", "prompt": [1, "2"]}""", 400, "prompt", "token id" },
        { Chat, """{"model": "tiny"}""", 400, "messages", "messages" },
        { Chat, """{"model": "tiny", "messages": []}""", 400, "messages", "messages" },
        { Chat, """{"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}""", 400, "messages", "role" },
        { Chat, """{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", 400, "messages", "image_url" },
        { Chat, """{"model": "tiny", "messages": [{"role": "user", "content": 5}]}""", 400, "messages", "content" },
        { Completions, """{"model": "tiny", "prompt": "x", "n": 2}""", 400, "n", "n = 1" },
        { Chat, """{"model": "tiny", "n": 3, "messages": [{"role": "user", "content": "x"}]}""", 400, "n", "n = 1" },
        { Completions, """{"model": "tiny", "prompt": "x", "echo": true}""", 400, "echo", "not supported" },
        { Completions, """{"model": "tiny", "prompt": "x", "logprobs": 2}""", 400, "logprobs", "not supported" },
        { Chat, """{"model": "tiny", "logprobs": true, "messages": [{"role": "user", "content": "x"}]}""", 400, "logprobs", "not supported" },
        { Completions, """{"model": "tiny", "prompt": "x", "presence_penalty": 0.5}""", 400, "presence_penalty", "presence_penalty" },
        { Chat, """{"model": "tiny", "frequency_penalty": 1, "messages": [{"role": "user", "content": "x"}]}""", 400, "frequency_penalty", "frequency_penalty" },
        { Chat, """{"model": "tiny", "tools": [{"type": "function"}], "messages": [{"role": "user", "content": "x"}]}""", 400, "tools", "tool" },
        { Completions, """{"model": "tiny", "prompt": "x", "temperature": "hot"}""", 400, "temperature", "temperature" },
        { Chat, """{"model": "tiny", "temperature": 7, "messages": [{"role": "user", "content": "x"}]}""", 400, null, "temperature" },
        { Completions, """{"model": "tiny", "prompt": "x", "top_p": [1]}""", 400, "top_p", "top_p" },
        { Completions, """{"model": "tiny", "prompt": "x", "max_tokens": 0}""", 400, "max_tokens", "max_tokens" },
        { Chat, """{"model": "tiny", "max_completion_tokens": "many", "messages": [{"role": "user", "content": "x"}]}""", 400, "max_completion_tokens", "max_completion_tokens" },
        { Completions, """{"model": "tiny", "prompt": "x", "seed": 1.5}""", 400, "seed", "seed" },
        { Completions, """{"model": "tiny", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}""", 400, "stop", "4" },
        { Completions, """{"model": "tiny", "prompt": "x", "stop": 3}""", 400, "stop", "stop" },
        { Completions, """{"model": "tiny", "prompt": "x", "stream": "yes"}""", 400, "stream", "stream" },
        { Completions, """{"model": "tiny", "prompt": "x", "stream_options": {"include_usage": true}}""", 400, "stream_options", "stream" },
        { Completions, """{"model": "no-such-model", "prompt": "x"}""", 404, "model", "no-such-model" },
        { "/openai/v1/chat/completions", """{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}""", 404, "model", "no-such-model" },
        { Completions, """{"model": "tensor-model", "prompt": "x"}""", 400, null, "not a generative model" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task Mistakes_get_their_status_in_OpenAI_error_shape(string path, string body, int status, string? param, string named)
    {
        var response = await Http.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("   at ", text);
        var error = Parse(text).GetProperty("error");
        Assert.Contains(named, error.GetProperty("message").GetString());
        Assert.Equal(status == 404 ? "not_found_error" : "invalid_request_error", error.GetProperty("type").GetString());
        if (param is null)
        {
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }
        else
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
        Assert.True(error.TryGetProperty("code", out _));
    }

    [Fact]
    public async Task Unknown_model_is_not_found_with_the_model_not_found_code()
    {
        var (_, body) = await PostJsonAsync(Http, Completions, """{"model": "no-such-model", "prompt": "x"}""");
        Assert.Equal("model_not_found", body.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData(Completions, """{"model": "busy", "prompt": "queue full"}""")]
    [InlineData(Chat, """{"model": "busy", "stream": true, "messages": [{"role": "user", "content": "queue full"}]}""")]
    public async Task A_full_queue_is_429_with_Retry_After(string path, string body)
    {
        var response = await Http.PostAsync(path, Json(body));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        var error = Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal("rate_limit_exceeded", error.GetProperty("type").GetString());
        Assert.Contains("queue", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task KServe_v1_predict_keeps_its_own_route_and_error_shape()
    {
        var response = await Http.PostAsync("/v1/models/no_such_model:predict", Json("""{"instances": [[1]]}"""));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        // The server's usual {"error": "..."}, not OpenAI's object.
        Assert.Equal(JsonValueKind.String, Parse(await response.Content.ReadAsStringAsync()).GetProperty("error").ValueKind);
    }
}
