using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Scheduling;
using InferenceServer.Tests.Infrastructure;
using InferenceServer.Tests.Integration.Decoding;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// A text generation's deadline: Triton's <c>timeout</c> parameter (REST generate and gRPC), and the server's default
/// for generation. A running stream past it ends with a deadline error event and frees its KV memory; a request
/// waiting past it leaves the queue with 504 / DEADLINE_EXCEEDED.
/// </summary>
public sealed class GenerationDeadlineTests
{
    private static string Repository()
    {
        var repo = Paths.NewTempDirectory("generation-deadline");
        DecoderModelWriter.Write(new DecoderOptions { Layers = 2, DModel = 128, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = 4096, Tokenizer = false }, Path.Combine(repo, "lm", "1"));
        File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"),
            "generation:\n" +
            "  tokenizer:\n" +
            "    kind: characters\n" +
            $"    vocabulary: {JsonSerializer.Serialize(KvCacheServingTests.Vocabulary)}\n" +
            "  max_running_sequences: 1\n" +
            "  max_tokens_limit: 4000\n");
        return repo;
    }

    private static ContinuousBatcher Batcher(RunningServer server) => Assert.IsType<ContinuousBatcher>(server.Repository.GetReady("lm", "").Runner);

    [Fact]
    public async Task A_stream_past_its_timeout_parameter_ends_with_a_deadline_error_event_and_frees_its_cache()
    {
        await using var server = await RunningServer.StartAsync(Repository());
        var batcher = Batcher(server);
        // Warm: the engine's first run (its own set-up) does not eat into the deadline below.
        using (var warm = await server.Http.PostAsync("/v2/models/lm/generate", new StringContent(
            """{"text_input": "a", "parameters": {"max_tokens": 2}}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }
        // 4,000 tokens take seconds; the deadline is 300 ms away.
        using var response = await server.Http.PostAsync("/v2/models/lm/generate_stream", new StringContent(
            """{"text_input": "a", "parameters": {"max_tokens": 4000, "ignore_eos": true, "timeout": 300000}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = (await response.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToList();
        Assert.True(events.Count > 1, "no text before the deadline");
        using var last = JsonDocument.Parse(events[^1]["data: ".Length..]);
        Assert.Contains("ran past its deadline", last.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        await KvCacheServingTests.WaitUntil(() => batcher.RunningCount == 0 && batcher.CacheUsage == 0, "the stream's cache was not freed");
        using (var admin = server.NewMetricsClient())
        {
            Assert.Equal(1, await RateLimitTests.RejectionsAsync(admin, "lm", "deadline"));
        }

        // A bad timeout is the client's mistake.
        using var bad = await server.Http.PostAsync("/v2/models/lm/generate", new StringContent(
            """{"text_input": "a", "parameters": {"timeout": "soon"}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task A_request_waiting_past_its_deadline_leaves_the_queue_with_504_while_the_running_stream_goes_on()
    {
        await using var server = await RunningServer.StartAsync(Repository());
        var batcher = Batcher(server);
        using var cancelFirst = new CancellationTokenSource();
        await GenerationRequests.HoldSlotAsync(server, "lm", cancelFirst.Token);

        // One running slot, taken: the second waits, and its 50 ms deadline passes in the queue (REST).
        using (var response = await server.Http.PostAsync("/v2/models/lm/generate", new StringContent(
            """{"text_input": "b", "parameters": {"max_tokens": 3, "timeout": 50000}}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
            Assert.Contains("waited in the queue past its deadline", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        // gRPC: the timeout parameter of a text_input request, answered DEADLINE_EXCEEDED.
        var request = GenerationRequests.GrpcText("lm", "c", ("timeout", 50000));
        var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Grpc.ModelInferAsync(request));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.Equal(0, batcher.WaitingCount);
        using (var admin = server.NewMetricsClient())
        {
            Assert.Equal(2, await RateLimitTests.RejectionsAsync(admin, "lm", "deadline"));
        }
        Assert.Equal(1, batcher.RunningCount);
        cancelFirst.Cancel();
        await KvCacheServingTests.WaitUntil(() => batcher.RunningCount == 0, "the first stream did not end");
    }

    [Fact]
    public async Task The_server_default_bounds_a_generation_whose_client_set_no_deadline()
    {
        await using var server = await RunningServer.StartAsync(Repository(), "--generation-timeout", "0.1");
        var batcher = Batcher(server);
        using var response = await server.Http.PostAsync("/v1/completions", new StringContent(
            """{"model": "lm", "prompt": "a", "max_tokens": 4000, "ignore_eos": true}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("past its deadline", body.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        await KvCacheServingTests.WaitUntil(() => batcher.RunningCount == 0 && batcher.CacheUsage == 0, "the cache was not freed");
    }
}
