using System.Net;
using System.Text.Json;
using InferenceServer.Tests.Infrastructure;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>Triton's generate extension (generate, generate_stream), and generative models over KServe v2 REST infer and metadata.</summary>
public sealed class GenerationRestTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private HttpClient Http => fixture.Server.Http;

    [Theory]
    [InlineData("/v2/models/tiny/generate")]
    [InlineData("/v2/models/tiny/versions/1/generate")]
    public async Task Generate_returns_the_whole_text_finish_reason_and_counts(string path)
    {
        var (response, body) = await PostJsonAsync(Http, path, """{"text_input": "generate whole", "parameters": {"max_tokens": 8}}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("tiny", body.GetProperty("model_name").GetString());
        Assert.Equal("1", body.GetProperty("model_version").GetString());
        Assert.Equal(GenerationServerFixture.Text, body.GetProperty("text_output").GetString());
        Assert.Equal("stop", body.GetProperty("finish_reason").GetString());
        Assert.Equal(7, body.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, body.GetProperty("completion_tokens").GetInt32());
        var received = fixture.Fake.Received.Last(r => r.Request.Prompt == "generate whole");
        Assert.Equal(path.Contains("versions") ? "1" : null, received.Version);
        Assert.Equal("generate", received.Request.Operation);
    }

    [Fact]
    public async Task Parameters_at_the_top_level_and_in_parameters_reach_the_request()
    {
        var (response, body) = await PostJsonAsync(Http, "/v2/models/tiny/generate", """
            {"text_input": "generate params", "id": "req-7", "max_tokens": 5, "temperature": 0.3, "bad_words": "",
             "parameters": {"temperature": 0.6, "top_p": 0.8, "top_k": 3, "seed": 9, "stop": ["x", "y"], "ignore_eos": true, "stream": false}}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("req-7", body.GetProperty("id").GetString());
        var request = fixture.Fake.Single("generate params").Request;
        Assert.Equal(5, request.MaxTokens);
        Assert.Equal(0.6f, request.Sampling.Temperature); // "parameters" wins over the top level
        Assert.Equal(0.8f, request.Sampling.TopP);
        Assert.Equal(3, request.Sampling.TopK);
        Assert.Equal(9UL, request.Sampling.Seed);
        Assert.Equal(["x", "y"], request.Stop);
        Assert.True(request.IgnoreEos);
        Assert.Equal("req-7", request.Id);
    }

    [Fact]
    public async Task Generate_stream_sends_an_event_per_piece_that_add_up_to_the_whole_text()
    {
        var response = await Http.PostAsync("/v2/models/tiny/generate_stream", Json("""{"text_input": "generate stream", "parameters": {"stream": true}}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.CacheControl?.NoCache);
        var events = Events(await response.Content.ReadAsStringAsync()).Select(Parse).ToList();

        Assert.Equal(["Hel", "lo", " wor", "ld"], events.Select(e => e.GetProperty("text_output").GetString()));
        Assert.All(events, e =>
        {
            Assert.Equal("tiny", e.GetProperty("model_name").GetString());
            Assert.Equal("1", e.GetProperty("model_version").GetString());
        });
        Assert.All(events[..^1], e => Assert.False(e.TryGetProperty("finish_reason", out _)));
        Assert.Equal("stop", events[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(7, events[^1].GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, events[^1].GetProperty("completion_tokens").GetInt32());

        var (_, whole) = await PostJsonAsync(Http, "/v2/models/tiny/generate", """{"text_input": "generate again"}""");
        Assert.Equal(whole.GetProperty("text_output").GetString(), string.Concat(events.Select(e => e.GetProperty("text_output").GetString())));
    }

    [Fact]
    public async Task Generate_stream_with_stream_false_sends_the_whole_text_at_once()
    {
        var response = await Http.PostAsync("/v2/models/tiny-length/generate_stream", Json("""{"text_input": "one event", "stream": false}"""));
        var single = Parse(Assert.Single(Events(await response.Content.ReadAsStringAsync())));
        Assert.Equal("abcd", single.GetProperty("text_output").GetString());
        Assert.Equal("length", single.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Generate_stream_reports_an_engine_failure_in_band()
    {
        var response = await Http.PostAsync("/v2/models/broken/generate_stream", Json("""{"text_input": "stream fail"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = Events(await response.Content.ReadAsStringAsync()).Select(Parse).ToList();
        Assert.Equal(2, events.Count);
        Assert.Equal("par", events[0].GetProperty("text_output").GetString());
        Assert.Contains("device lost", events[1].GetProperty("error").GetString());
    }

    [Fact]
    public async Task Client_disconnecting_from_generate_stream_cancels_the_generation()
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = Http.BaseAddress };
        var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/slow/generate_stream") { Content = Json("""{"text_input": "generate disconnect"}""") };
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.Contains("\"first\"", await reader.ReadLineAsync());
        }
        client.Dispose();
        await fixture.Fake.Single("generate disconnect").Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public static TheoryData<string, string, HttpStatusCode, string> Mistakes => new()
    {
        { "/v2/models/no-such-model/generate", """{"text_input": "x"}""", HttpStatusCode.NotFound, "no-such-model" },
        { "/v2/models/tiny/versions/9/generate", """{"text_input": "x"}""", HttpStatusCode.NotFound, "9" },
        { "/v2/models/tensor-model/generate_stream", """{"text_input": "x"}""", HttpStatusCode.BadRequest, "not a generative model" },
        { "/v2/models/tiny/generate", """{"parameters": {}}""", HttpStatusCode.BadRequest, "text_input" },
        { "/v2/models/tiny/generate", """{"text_input": 5}""", HttpStatusCode.BadRequest, "text_input" },
        { "/v2/models/tiny/generate", """{"text_input": "x", """, HttpStatusCode.BadRequest, "JSON" },
        { "/v2/models/tiny/generate_stream", """{"text_input": "x", "parameters": {"temperature": "warm"}}""", HttpStatusCode.BadRequest, "temperature" },
        { "/v2/models/tiny/generate", """{"text_input": "x", "parameters": {"max_tokens": -1}}""", HttpStatusCode.BadRequest, "max_tokens" },
        { "/v2/models/tiny/generate", """{"text_input": "x", "parameters": 3}""", HttpStatusCode.BadRequest, "parameters" },
        { "/v2/models/busy/generate", """{"text_input": "x"}""", HttpStatusCode.TooManyRequests, "queue" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task Generate_mistakes_get_the_servers_error_contract(string path, string body, HttpStatusCode status, string named)
    {
        var response = await Http.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{response.StatusCode}: {text}");
        Assert.DoesNotContain("   at ", text);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(named, Parse(text).GetProperty("error").GetString());
        if (status == HttpStatusCode.TooManyRequests)
        {
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        }
    }

    [Fact]
    public async Task KServe_v2_infer_takes_text_input_and_answers_text_output()
    {
        var (response, body) = await PostJsonAsync(Http, "/v2/models/tiny/infer", """
            {"id": "infer-1", "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": ["infer prompt"]}],
             "parameters": {"max_tokens": 3, "temperature": 0.2, "top_k": 4, "stop": "END"}}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("tiny", body.GetProperty("model_name").GetString());
        Assert.Equal("infer-1", body.GetProperty("id").GetString());
        var output = Assert.Single(body.GetProperty("outputs").EnumerateArray());
        Assert.Equal("text_output", output.GetProperty("name").GetString());
        Assert.Equal("BYTES", output.GetProperty("datatype").GetString());
        Assert.Equal([1], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Equal(GenerationServerFixture.Text, output.GetProperty("data")[0].GetString());

        var request = fixture.Fake.Single("infer prompt").Request;
        Assert.Equal(3, request.MaxTokens);
        Assert.Equal(0.2f, request.Sampling.Temperature);
        Assert.Equal(4, request.Sampling.TopK);
        Assert.Equal(["END"], request.Stop);
        Assert.Equal("infer-1", request.Id);
    }

    [Theory]
    [InlineData("""{"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}""", "prompt")]
    [InlineData("""{"inputs": [{"name": "text_input", "datatype": "INT32", "shape": [1], "data": [1]}]}""", "text_input")]
    [InlineData("""{"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}]}""", "text_input")]
    [InlineData("""{"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["x"]}], "parameters": {"temperature": "hot"}}""", "temperature")]
    public async Task KServe_v2_infer_mistakes_on_a_generative_model_are_400(string body, string named)
    {
        var response = await Http.PostAsync("/v2/models/tiny/infer", Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(named, Parse(await response.Content.ReadAsStringAsync()).GetProperty("error").GetString());
    }
}
