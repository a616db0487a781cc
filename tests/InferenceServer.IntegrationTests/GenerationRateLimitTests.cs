using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.Tests.Infrastructure;
using InferenceServer.Tests.Integration.Decoding;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Text generation's token budget (<c>Admission:Models:NAME:TokensPerMinute</c>), as LLM gateways meter it: a
/// generation's prompt and generated tokens are charged to the model's budget; once it is spent, generations on every
/// route are refused with 429 / RESOURCE_EXHAUSTED and Retry-After until it refills, counted as rate-limit rejections.
/// </summary>
public sealed class GenerationRateLimitTests
{
    [Fact]
    public async Task A_spent_token_budget_refuses_generations_with_429_and_retry_after_over_rest_and_grpc()
    {
        // 6 tokens a minute (one in 10 s: nothing refills noticeably while the test runs), 20 at most.
        await using var server = await RunningServer.StartAsync(
            KvCacheServingTests.Repository(new ModelBuilder.Decoders.DecoderOptions { Layers = 1, DModel = 32, Heads = 2, KvHeads = 1, Vocab = 256, MaxPositions = 256, Tokenizer = false }),
            new Dictionary<string, string?> { ["Admission:Models:lm:TokensPerMinute"] = "6", ["Admission:Models:lm:TokenBurst"] = "20" });
        static StringContent Body(string text) => new(text, Encoding.UTF8, "application/json");

        // 11 prompt tokens and 15 generated: 26 charged, 6 over the budget of 20.
        using (var response = await server.Http.PostAsync("/v1/completions", Body("""{"model": "lm", "prompt": "hello world", "max_tokens": 15, "ignore_eos": true}""")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(26, body.RootElement.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        }

        // Spent: the next generation waits for 7 tokens (70 s), on every route; nothing of it runs.
        using (var response = await server.Http.PostAsync("/v1/completions", Body("""{"model": "lm", "prompt": "again", "max_tokens": 3}""")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
            var retryAfter = response.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
            Assert.InRange(retryAfter, 60, 70);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains("token rate limit exceeded: 6 prompt and generated tokens per minute", body.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        using (var response = await server.Http.PostAsync("/v2/models/lm/generate_stream", Body("""{"text_input": "again", "parameters": {"max_tokens": 3}}""")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
            Assert.NotNull(response.Headers.RetryAfter);
        }
        var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Grpc.ModelInferAsync(GenerationRequests.GrpcText("lm", "again", ("max_tokens", 3))));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);

        using var admin = server.NewMetricsClient();
        Assert.Equal(3, await RateLimitTests.RejectionsAsync(admin, "lm", "rate_limit"));
        // The admin API shows the budget with the other limits.
        using var limits = JsonDocument.Parse(await admin.GetStringAsync("/v2/admin/limits/lm"));
        Assert.Contains("\"tokens_per_minute\":6", limits.RootElement.GetRawText().Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }
}
