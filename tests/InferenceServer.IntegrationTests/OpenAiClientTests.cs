#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental by the OpenAI package.
using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using InferenceServer.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>The official OpenAI .NET client against the server, and the optional API key on the OpenAI routes.</summary>
public sealed class OpenAiClientTests(ApiKeyServerFixture fixture) : IClassFixture<ApiKeyServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    private ChatClient Client(string model = "tiny", string key = ApiKeyServerFixture.ApiKey) =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Http.BaseAddress!, "/v1") });

    [Fact]
    public async Task Official_client_completes_a_chat()
    {
        var options = new ChatCompletionOptions
        {
            Temperature = 0.25f,
            TopP = 0.75f,
            MaxOutputTokenCount = 12,
            Seed = 99,
            StopSequences = { "STOP" },
        };
        ChatCompletion completion = await Client().CompleteChatAsync(
            [new SystemChatMessage("Be brief."), new UserChatMessage("sdk whole")], options);

        Assert.Equal(GenerationServerFixture.Text, Assert.Single(completion.Content).Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(7, completion.Usage.InputTokenCount);
        Assert.Equal(5, completion.Usage.OutputTokenCount);
        Assert.Equal(12, completion.Usage.TotalTokenCount);
        Assert.Equal("tiny", completion.Model);
        Assert.StartsWith("chatcmpl-", completion.Id);

        var request = fixture.Fake.Single("sdk whole").Request;
        Assert.Equal([new("system", "Be brief."), new InferenceServer.Generation.Chat.ChatMessage("user", "sdk whole")], request.Messages);
        Assert.Equal(0.25f, request.Sampling.Temperature);
        Assert.Equal(0.75f, request.Sampling.TopP);
        Assert.Equal(99UL, request.Sampling.Seed);
        Assert.Equal(12, request.MaxTokens);
        Assert.Equal(["STOP"], request.Stop);
    }

    [Fact]
    public async Task Official_client_streams_a_chat()
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("sdk stream")], new ChatCompletionOptions()))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(GenerationServerFixture.Text, text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.True(updates >= 5, $"{updates} updates: the text should arrive in pieces");
        // The client asks for stream_options.include_usage and reads the usage chunk.
        Assert.NotNull(usage);
        Assert.Equal(5, usage.OutputTokenCount);
        Assert.Equal(7, usage.InputTokenCount);
        Assert.NotNull(fixture.Fake.Single("sdk stream"));
    }

    [Fact]
    public async Task Official_client_with_a_wrong_key_gets_401()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Client(key: "sk-wrong").CompleteChatAsync([new UserChatMessage("wrong key")]));
        Assert.Equal(401, e.Status);
        Assert.DoesNotContain(fixture.Fake.Received, r => r.Request.Messages?.Any(m => m.Content == "wrong key") == true);
    }

    [Theory]
    [InlineData("/v1")]
    [InlineData("/openai/v1")]
    public async Task OpenAI_routes_need_the_key(string prefix)
    {
        var body = $$"""{"model": "tiny", "prompt": "key check {{prefix}}"}""";
        foreach (var authorization in new AuthenticationHeaderValue?[] { null, new("Bearer", "sk-wrong"), new("Basic", ApiKeyServerFixture.ApiKey), new("Bearer", ApiKeyServerFixture.ApiKey + "x") })
        {
            foreach (var request in new[] { new HttpRequestMessage(HttpMethod.Get, prefix + "/models"), new HttpRequestMessage(HttpMethod.Post, prefix + "/completions") { Content = Json(body) } })
            {
                request.Headers.Authorization = authorization;
                var response = await Http.SendAsync(request);
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
                var error = Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
                Assert.Equal("authentication_error", error.GetProperty("type").GetString());
                Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            }
        }
        Assert.DoesNotContain(fixture.Fake.Received, r => r.Request.Prompt == $"key check {prefix}");

        foreach (var request in new[] { new HttpRequestMessage(HttpMethod.Get, prefix + "/models"), new HttpRequestMessage(HttpMethod.Post, prefix + "/completions") { Content = Json(body) } })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKeyServerFixture.ApiKey);
            var response = await Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task KServe_and_Triton_routes_do_not_need_the_key()
    {
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/v2/health/live")).StatusCode);
        var (generate, body) = await PostJsonAsync(Http, "/v2/models/tiny/generate", """{"text_input": "no key needed"}""");
        Assert.Equal(HttpStatusCode.OK, generate.StatusCode);
        Assert.Equal(GenerationServerFixture.Text, body.GetProperty("text_output").GetString());
        var predict = await Http.PostAsync("/v1/models/no_such_model:predict", Json("""{"instances": [[1]]}"""));
        Assert.Equal(HttpStatusCode.NotFound, predict.StatusCode);
        var (_, infer) = await PostJsonAsync(Http, "/v2/models/tiny/infer",
            """{"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["infer no key"]}]}""");
        Assert.Equal(GenerationServerFixture.Text, infer.GetProperty("outputs")[0].GetProperty("data")[0].GetString());
    }
}
