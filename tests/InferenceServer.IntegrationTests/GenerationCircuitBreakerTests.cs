using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.Admission;
using InferenceServer.Generation;
using Microsoft.Extensions.DependencyInjection;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Repository;
using InferenceServer.Scheduling;
using InferenceServer.Tests.Infrastructure;
using InferenceServer.Tests.Integration.Decoding;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Text generation through the circuit breaker, as tensor inference: a primary language model that fails at run time
/// and a small local one as its fallback. The primary is a generated KV-cache decoder whose rotary table holds 48
/// positions while its configuration allows 256 tokens, so any sequence that reaches position 48 fails in the engine
/// (an out-of-range Gather): a long prompt fails before its first token, a long completion in the middle of its
/// stream. The breaker's clock is the test's.
/// </summary>
public sealed class GenerationCircuitBreakerTests
{
    private const int FailingPosition = 48;

    private static string Repository(string breaker, int bigPositions = FailingPosition)
    {
        var repo = Paths.NewTempDirectory("generation-breaker");
        Write(repo, "big", new DecoderOptions { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = bigPositions, Tokenizer = false, Seed = 11 },
            $"max_model_len: {Math.Max(256, bigPositions)}\n  max_running_sequences: 1\n", breaker);
        Write(repo, "small", new DecoderOptions { Layers = 1, DModel = 32, Heads = 2, KvHeads = 1, Vocab = 256, MaxPositions = 256, Tokenizer = false, Seed = 12 }, "", "");
        return repo;
    }

    private static void Write(string repo, string name, DecoderOptions options, string generation, string extra)
    {
        DecoderModelWriter.Write(options, Path.Combine(repo, name, "1"));
        File.WriteAllText(Path.Combine(repo, name, "config.yaml"),
            "generation:\n" +
            "  tokenizer:\n" +
            "    kind: characters\n" +
            // Printable ASCII and a newline (chat messages go on their own lines).
            $"    vocabulary: {JsonSerializer.Serialize(KvCacheServingTests.Vocabulary + "\n")}\n" +
            "  " + generation +
            extra);
    }

    private static Task<HttpResponseMessage> CompleteAsync(RunningServer server, string prompt, int maxTokens, bool stream = false, string model = "big") =>
        server.Http.PostAsync("/v1/completions", new StringContent(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["stream"] = stream, ["ignore_eos"] = true, ["temperature"] = 0,
        }), Encoding.UTF8, "application/json"));

    private static Protocol.ModelInferRequest GrpcText(string prompt) => GenerationRequests.GrpcText("big", prompt, ("max_tokens", 4));

    private static CircuitState State(RunningServer server) => server.Repository.Select("big", "").Breaker!.State;

    [Fact]
    public async Task A_failing_primary_opens_its_breaker_the_fallback_serves_every_route_and_a_trial_after_recovery_closes_it()
    {
        var (server, time) = await CircuitBreakerTests.StartAsync(Repository(
            "circuit_breaker: {failure_rate_threshold: 50, sliding_window_size: 2, minimum_number_of_calls: 2, open_duration_ms: 30000, half_open_calls: 1, fallback_model: small}\n"));
        await using var _ = server;
        Assert.Equal(CircuitState.Closed, State(server));

        // A stream under way when the engine fails (at position 48) ends with an error event after its text, never
        // silently: failure 1.
        using (var response = await CompleteAsync(server, "ab", 80, stream: true))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var events = (await response.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToList();
            Assert.True(events.Count > 10, $"only {events.Count} events before the failure");
            Assert.Contains("\"text\"", events[0], StringComparison.Ordinal);
            using var error = JsonDocument.Parse(events[^1]["data: ".Length..]);
            Assert.True(error.RootElement.GetProperty("error").GetProperty("type").GetString() == "server_error", events[^1]);
            Assert.Equal("server_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
            Assert.DoesNotContain("data: [DONE]", events);
            Assert.DoesNotContain(events, e => e.Contains("   at ", StringComparison.Ordinal));
        }
        Assert.Equal(CircuitState.Closed, State(server));

        // A prompt past position 48 fails before its first token: failure 2 opens the breaker.
        var longPrompt = new string('x', 60);
        using (var response = await CompleteAsync(server, longPrompt, 4))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }
        Assert.Equal(CircuitState.Open, State(server));

        // Open: every completion succeeds, served by the fallback with its own tokenizer and template; the response
        // names it (x-served-by-model; OpenAI's "model" field).
        using (var response = await CompleteAsync(server, longPrompt, 8))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("small/1", Assert.Single(response.Headers.GetValues("x-served-by-model")));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("small", body.RootElement.GetProperty("model").GetString());
            Assert.Equal(8, body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
        using (var response = await CompleteAsync(server, "ab", 80, stream: true))
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal("small/1", Assert.Single(response.Headers.GetValues("x-served-by-model")));
            Assert.Contains("data: [DONE]", text, StringComparison.Ordinal);
            Assert.DoesNotContain("\"error\"", text, StringComparison.Ordinal);
        }
        using (var response = await server.Http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model": "big", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6}""", Encoding.UTF8, "application/json")))
        {
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Equal("small/1", Assert.Single(response.Headers.GetValues("x-served-by-model")));
        }
        // Triton's generate extension and KServe v2 text_input, too.
        using (var response = await server.Http.PostAsync("/v2/models/big/generate", new StringContent(
            """{"text_input": "hello", "parameters": {"max_tokens": 5}}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("small/1", Assert.Single(response.Headers.GetValues("x-served-by-model")));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("small", body.RootElement.GetProperty("model_name").GetString());
        }
        using (var response = await server.Http.PostAsync("/v2/models/big/infer", new StringContent(
            """{"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["hello"]}], "parameters": {"max_tokens": 5}}""", Encoding.UTF8, "application/json")))
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(text);
            Assert.Equal("small/1", body.RootElement.GetProperty("parameters").GetProperty("served_by_model").GetString());
            Assert.Equal("big", body.RootElement.GetProperty("parameters").GetProperty("fallback_for").GetString());
        }
        // gRPC: ModelInfer (the x-served-by-model header and parameters) and each response of ModelStreamInfer.
        var unary = server.Grpc.ModelInferAsync(GrpcText("hello"));
        var whole = await unary.ResponseAsync;
        Assert.Equal("small", whole.ModelName);
        Assert.Equal("small/1", (await unary.ResponseHeadersAsync).GetValue("x-served-by-model"));
        Assert.Equal("big", whole.Parameters["fallback_for"].StringParam);
        using (var call = server.Grpc.ModelStreamInfer())
        {
            await call.RequestStream.WriteAsync(GrpcText("hello"));
            await call.RequestStream.CompleteAsync();
            var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();
            Assert.NotEmpty(responses);
            Assert.All(responses, r =>
            {
                Assert.Equal("", r.ErrorMessage);
                Assert.Equal("small", r.InferResponse.ModelName);
                Assert.Equal("small/1", r.InferResponse.Parameters["served_by_model"].StringParam);
                Assert.Equal("big", r.InferResponse.Parameters["fallback_for"].StringParam);
            });
        }
        Assert.Equal(7, await CircuitBreakerTests.MetricAsync(server, "inference_circuit_breaker_fallback_total{model=\"big\",version=\"1\",fallback=\"small\"}"));

        // The primary recovers for short requests; once the open duration has passed, one trial call goes to it and
        // closes the breaker.
        time.Advance(TimeSpan.FromSeconds(30));
        using (var response = await CompleteAsync(server, "ab", 6))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.False(response.Headers.Contains("x-served-by-model"));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("big", body.RootElement.GetProperty("model").GetString());
        }
        Assert.Equal(CircuitState.Closed, State(server));
    }

    [Fact]
    public async Task A_grpc_stream_under_way_when_the_engine_fails_ends_with_an_error_response_and_a_unary_call_with_internal()
    {
        await using var server = await RunningServer.StartAsync(Repository(""));
        // 80 tokens, whatever is sampled: the sequence reaches position 48, where the engine fails.
        static Protocol.ModelInferRequest Failing()
        {
            var request = GenerationRequests.GrpcText("big", "ab", ("max_tokens", 80));
            request.Parameters["ignore_eos"] = new Protocol.InferParameter { BoolParam = true };
            return request;
        }
        using (var call = server.Grpc.ModelStreamInfer())
        {
            await call.RequestStream.WriteAsync(Failing());
            await call.RequestStream.CompleteAsync();
            var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();
            // Text, then Triton's error response (error_message, final): never a stream that just stops.
            Assert.True(responses.Count > 2, $"{responses.Count} responses");
            Assert.All(responses.SkipLast(1), r => Assert.Equal("", r.ErrorMessage));
            Assert.Contains("model execution failed", responses[^1].ErrorMessage, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", responses[^1].ErrorMessage, StringComparison.Ordinal);
        }
        var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Grpc.ModelInferAsync(Failing()));
        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    [Fact]
    public async Task A_stream_whose_first_token_comes_later_than_the_slow_call_duration_counts_as_slow_and_opens_the_breaker()
    {
        var (server, time) = await CircuitBreakerTests.StartAsync(Repository(
            "circuit_breaker: {slow_call_rate_threshold: 100, slow_call_duration_ms: 1000, sliding_window_size: 1, minimum_number_of_calls: 1, open_duration_ms: 30000}\n",
            bigPositions: 4096));
        await using var _ = server;
        var batcher = Assert.IsType<ContinuousBatcher>(server.Repository.GetReady("big", "").Runner);
        // One running slot: a long stream holds it while the second request waits in the queue, and the test's clock
        // moves 2 s past the second one's admission before its first token.
        using var cancelFirst = new CancellationTokenSource();
        var first = await GenerationRequests.HoldSlotAsync(server, "big", cancelFirst.Token);
        var second = CompleteAsync(server, "b", 3);
        for (var i = 0; i < 500 && batcher.WaitingCount == 0 && !second.IsCompleted; i++)
        {
            await Task.Delay(10);
        }
        Assert.Equal(1, batcher.WaitingCount);
        time.Advance(TimeSpan.FromSeconds(2));
        // A cancelled stream counts for nothing; the waiting request then runs, its first token 2 s late.
        cancelFirst.Cancel();
        using (var response = await second)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        for (var i = 0; i < 500 && State(server) != CircuitState.Open; i++)
        {
            await Task.Delay(10);
        }
        Assert.Equal(CircuitState.Open, State(server));
        // No fallback: 503 with Retry-After, in OpenAI's error shape.
        using var refused = await CompleteAsync(server, "c", 3);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter is not null);
        Assert.Contains("circuit breaker open for model 'big'", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
