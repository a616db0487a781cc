using System.Net;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Tests.Infrastructure;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Several prompts in one <c>/v1/completions</c> request against scripted generations: each prompt is its own generation
/// request (text or token ids), a client that leaves stops all of them, an engine failure is one in-band error, and a
/// full queue refuses the request as a whole. A prompt the model refuses (admission by tokens) is named: <c>param</c>,
/// the index of the prompt among several, and OpenAI's <c>context_length_exceeded</c> code.
/// </summary>
public sealed class OpenAiSeveralPromptsTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    [Fact]
    public async Task Each_prompt_becomes_its_own_generation_request()
    {
        var (response, body) = await PostJsonAsync(Http, "/v1/completions", """{"model": "tiny", "prompt": [[11, 12, 13], [14]], "max_tokens": 3, "user": "several ids"}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = body.GetProperty("id").GetString();
        var received = fixture.Fake.Received.Where(r => r.Request.Id == id).Select(r => r.Request).ToList();
        Assert.Equal(2, received.Count);
        Assert.All(received, r =>
        {
            Assert.Null(r.Prompt);
            Assert.Null(r.Messages);
            Assert.Equal(3, r.MaxTokens);
        });
        Assert.Equal([11, 12, 13], received[0].PromptTokenIds);
        Assert.Equal([14], received[1].PromptTokenIds);
        Assert.Equal([GenerationServerFixture.Text, GenerationServerFixture.Text],
            body.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
        // Seven prompt and five completion tokens per scripted generation.
        Assert.Equal(14, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(10, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Client_disconnecting_from_a_stream_of_several_prompts_cancels_every_generation()
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = Http.BaseAddress };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = Json("""{"model": "slow", "prompt": ["several leave a", "several leave b"], "stream": true}"""),
        };
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.Contains("\"first\"", await reader.ReadLineAsync());
            Assert.False(fixture.Fake.Single("several leave a").Cancelled.Task.IsCompleted);
            Assert.False(fixture.Fake.Single("several leave b").Cancelled.Task.IsCompleted);
        }
        client.Dispose();
        await fixture.Fake.Single("several leave a").Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await fixture.Fake.Single("several leave b").Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Engine_failure_in_one_of_several_streamed_prompts_is_one_error_event_and_the_end()
    {
        var response = await Http.PostAsync("/v1/completions", Json("""{"model": "broken", "prompt": ["several fail a", "several fail b"], "stream": true}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Events(await response.Content.ReadAsStringAsync());
        var error = Parse(events[^1]).GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Contains("device lost", error.GetProperty("message").GetString());
        // Before it, only pieces of text; no [DONE] after it.
        Assert.All(events[..^1], e => Assert.Equal("par", Parse(e).GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.DoesNotContain("[DONE]", events);
    }

    [Fact]
    public async Task A_full_queue_refuses_several_prompts_as_a_whole()
    {
        var response = await Http.PostAsync("/v1/completions", Json("""{"model": "busy", "prompt": [[1], [2]]}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("1", response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>A model that refuses every prompt as the dispatcher refuses one that does not fit a 2048-token context.</summary>
    private void AddTooLong(string name) => fixture.Fake.Models.TryAdd(name, new FakeScript
    {
        RefuseWith = () => Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(
            new GenerationSettings
            {
                Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "ab" },
                ContextWindow = 2048,
                InputName = "input_ids",
                LogitsName = "logits",
                LogitsWidth = 2,
                MaxRunningSequences = 1,
                MaxWaitingSequences = 1,
                MaxModelLen = 2048,
            },
            promptTokens: 1900, requested: 200)),
    });

    [Fact]
    public async Task A_prompt_beyond_the_context_length_is_a_400_with_param_and_code()
    {
        AddTooLong("too-long");
        (string Path, string Body, string Param, string Prefix)[] cases =
        [
            ("/v1/completions", """{"model": "too-long", "prompt": "long one", "max_tokens": 200}""", "prompt", ""),
            ("/v1/completions", """{"model": "too-long", "prompt": [[1, 2], [3]], "max_tokens": 200}""", "prompt", "prompt[0]: "),
            ("/v1/chat/completions", """{"model": "too-long", "messages": [{"role": "user", "content": "long"}], "max_tokens": 200}""", "messages", ""),
        ];
        foreach (var (path, body, param, prefix) in cases)
        {
            var (response, answer) = await PostJsonAsync(Http, path, body);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = answer.GetProperty("error");
            Assert.Equal(prefix + "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens (1900 in the prompt, 200 in the completion). Please reduce the length of the prompt or completion.",
                error.GetProperty("message").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(param, error.GetProperty("param").GetString());
            Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        }
    }
}
