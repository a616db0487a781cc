using System.Net;
using System.Text;
using Grpc.Core;
using InferenceServer.Admission;
using InferenceServer.Backends;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Admission control against the real server: token buckets per model and per tenant (burst exactness and the
/// rejection headers over REST and gRPC), the bound on tenant partitions, run-time changes through the admin port,
/// and the concurrency limit with its bounded wait queue.
/// </summary>
public sealed class RateLimitTests
{
    // One token per hour: replenishment is effectively paused for the length of a test.
    private const string Hourly = "0.000277";

    private static readonly byte[] GateBody = Encoding.UTF8.GetBytes(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 2], \"data\": [1, 2]}]}");

    [Fact]
    public async Task A_burst_beyond_the_bucket_gets_exactly_the_excess_rejected_with_rate_limit_headers_and_grpc_trailers()
    {
        await using var server = await StartAsync("rl_burst", new()
        {
            ["Admission:Models:rl_burst:RequestsPerSecond"] = Hourly,
            ["Admission:Models:rl_burst:Burst"] = "5",
        });

        // 8 at once against a bucket of 5: exactly 3 turned away.
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => InferAsync(server, "rl_burst")));
        try
        {
            Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
            var rejected = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToArray();
            Assert.Equal(3, rejected.Length);
            foreach (var response in rejected)
            {
                var retryAfter = long.Parse(Header(response, "Retry-After"));
                Assert.InRange(retryAfter, 1, 3700);
                Assert.Equal("5", Header(response, "x-ratelimit-limit"));
                Assert.Equal("0", Header(response, "x-ratelimit-remaining"));
                Assert.Equal(retryAfter.ToString(), Header(response, "x-ratelimit-reset"));
                Assert.Contains("rate limit", await response.Content.ReadAsStringAsync());
            }
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }

        // gRPC: RESOURCE_EXHAUSTED with the same values in the trailers.
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("rl_burst", "", [Floats()], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Equal("5", error.Trailers.GetValue("x-ratelimit-limit"));
        Assert.Equal("0", error.Trailers.GetValue("x-ratelimit-remaining"));
        Assert.InRange(long.Parse(error.Trailers.GetValue("x-ratelimit-reset")!), 1, 3700);
        Assert.InRange(long.Parse(error.Trailers.GetValue("grpc-retry-pushback-ms")!), 1000, 3_700_000);

        using var admin = server.NewMetricsClient();
        Assert.Equal(4, await RejectionsAsync(admin, "rl_burst", "rate_limit"));
    }

    [Fact]
    public async Task Each_tenant_has_its_own_bucket_and_requests_without_a_tenant_share_the_default_one()
    {
        await using var server = await StartAsync("rl_tenant", new()
        {
            ["Admission:Models:rl_tenant:TenantRequestsPerSecond"] = Hourly,
            ["Admission:Models:rl_tenant:TenantBurst"] = "2",
            ["Admission:TenantHeader"] = "x-org",
        });

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", "acme"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", "acme"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_tenant", "acme"));
        // Another tenant is untouched by acme's exhaustion.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", "globex"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", "globex"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_tenant", "globex"));
        // No tenant header: the shared default bucket, with its own two tokens.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", null));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_tenant", null));
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_tenant", null));
        // The tenant travels in gRPC metadata too.
        var grpcError = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(
            InferClient.BuildGrpcRequest("rl_tenant", "", [Floats()], raw: true), new Metadata { { "x-org", "acme" } }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, grpcError.StatusCode);
        var accepted = await server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("rl_tenant", "", [Floats()], raw: true), new Metadata { { "x-org", "initech" } });
        Assert.Single(accepted.Outputs);
    }

    [Fact]
    public async Task Thousands_of_distinct_tenants_stay_within_the_partition_bound_and_never_become_metric_labels()
    {
        const int bound = 50;
        await using var server = await StartAsync("rl_lru", new()
        {
            ["Admission:Models:rl_lru:TenantRequestsPerSecond"] = Hourly,
            ["Admission:Models:rl_lru:TenantBurst"] = "1",
            ["Admission:MaxTenants"] = bound.ToString(),
        });
        var admission = server.Services.GetRequiredService<AdmissionController>();

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_lru", "first"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_lru", "first"));
        var statuses = new List<HttpStatusCode>();
        const int tenants = 2000;
        for (var batch = 0; batch < tenants; batch += 50)
        {
            statuses.AddRange(await Task.WhenAll(Enumerable.Range(batch, 50).Select(i => StatusAsync(server, "rl_lru", $"made-up-{i}"))));
            Assert.InRange(admission.TenantCount("rl_lru"), 1, bound);
        }
        // Each made-up tenant had a fresh bucket of one, so none was limited by another.
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(bound, admission.TenantCount("rl_lru"));
        // "first" was evicted long ago: it starts over with a full bucket.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_lru", "first"));

        using var admin = server.NewMetricsClient();
        var metrics = await admin.GetStringAsync("/metrics");
        Assert.DoesNotContain("made-up-", metrics);
        Assert.Equal(1, await RejectionsAsync(admin, "rl_lru", "rate_limit"));
    }

    [Fact]
    public async Task A_limit_changed_through_the_admin_endpoint_takes_effect_for_new_requests()
    {
        await using var server = await StartAsync("rl_admin", []);
        using var admin = server.NewMetricsClient();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_admin", null));
        }

        using (var put = await admin.PutAsync("/v2/admin/limits/rl_admin", Json($"{{\"requests_per_second\": {Hourly}, \"burst\": 2}}")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.Contains("\"rl_admin\"", await put.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_admin", null));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_admin", null));
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_admin", null));
        var current = await admin.GetStringAsync("/v2/admin/limits/rl_admin");
        Assert.Contains("\"burst\":2", current.Replace(" ", ""));

        // Bad input is a 400 naming the field; the limits in force stay as they were.
        using (var bad = await admin.PutAsync("/v2/admin/limits/rl_admin", Json("{\"burst\": -1}")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("Burst", await bad.Content.ReadAsStringAsync());
        }
        using (var bad = await admin.PutAsync("/v2/admin/limits/rl_admin", Json("{\"rps\": 3}")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("'rps'", await bad.Content.ReadAsStringAsync());
        }
        using (var bad = await admin.PutAsync("/v2/admin/limits", Json("{\"requests_per_second\": \"fast\"")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(server, "rl_admin", null));

        // The admin API is on the admin port only.
        using (var outside = await server.Http.PutAsync("/v2/admin/limits/rl_admin", Json("{}")))
        {
            Assert.Equal(HttpStatusCode.NotFound, outside.StatusCode);
        }
        using (var outside = await server.Http.GetAsync("/v2/admin/limits"))
        {
            Assert.Equal(HttpStatusCode.NotFound, outside.StatusCode);
        }

        // Removing the override lifts the limit.
        using (var delete = await admin.DeleteAsync("/v2/admin/limits/rl_admin"))
        {
            Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        }
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(server, "rl_admin", null));
    }

    [Fact]
    public async Task Beyond_the_concurrency_limit_and_its_queue_requests_are_shed_at_once_and_the_admitted_all_succeed()
    {
        const int permits = 2, queue = 2, excess = 3;
        await using var server = await StartAsync("rl_conc", new()
        {
            ["Admission:Models:rl_conc:MaxConcurrency"] = permits.ToString(),
            ["Admission:Models:rl_conc:QueueLength"] = queue.ToString(),
        });
        var state = GateBackend.States["rl_conc"];
        state.Open.Reset();
        var pending = new List<Task<HttpResponseMessage>>();
        try
        {
            pending.AddRange(Enumerable.Range(0, permits + queue + excess).Select(_ => InferAsync(server, "rl_conc")));
            // With the gate shut nothing admitted can finish, so the first answers are the shed ones.
            var shed = new List<HttpResponseMessage>();
            var remaining = pending.ToList();
            while (shed.Count < excess)
            {
                var done = await Task.WhenAny(remaining).WaitAsync(TimeSpan.FromSeconds(30));
                remaining.Remove(done);
                shed.Add(await done);
            }
            Assert.All(shed, r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));
            Assert.All(shed, r => Assert.Equal(permits.ToString(), Header(r, "x-ratelimit-limit")));
            Assert.All(shed, r => Assert.Equal("0", Header(r, "x-ratelimit-remaining")));
            Assert.All(shed, r => Assert.Equal("1", Header(r, "Retry-After")));
            Assert.All(remaining, t => Assert.False(t.IsCompleted));

            state.Open.Set();
            var admitted = await Task.WhenAll(remaining).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(permits + queue, admitted.Length);
            Assert.All(admitted, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
            Assert.True(state.MaxConcurrent <= permits, $"{state.MaxConcurrent} ran at once");
        }
        finally
        {
            state.Open.Set();
            foreach (var task in pending)
            {
                (await task).Dispose();
            }
        }
        using var admin = server.NewMetricsClient();
        Assert.Equal(excess, await RejectionsAsync(admin, "rl_conc", "concurrency"));
    }

    [Fact]
    public async Task Generation_streams_return_their_concurrency_permit_when_they_end_and_OpenAI_rejections_carry_the_headers()
    {
        var repo = Paths.NewTempDirectory("ratelimit-lm");
        SampleModels.Bigram().Save(Path.Combine(repo, "lm", "1", "model.onnx"));
        File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"), SampleModels.BigramConfigYaml);
        SampleModels.Bigram().Save(Path.Combine(repo, "lm_rate", "1", "model.onnx"));
        File.WriteAllText(Path.Combine(repo, "lm_rate", "config.yaml"), SampleModels.BigramConfigYaml);
        await using var server = await RunningServer.StartAsync(repo, new Dictionary<string, string?>
        {
            ["Admission:Models:lm:MaxConcurrency"] = "1",
            ["Admission:Models:lm:QueueLength"] = "0",
            ["Admission:Models:lm_rate:RequestsPerSecond"] = Hourly,
            ["Admission:Models:lm_rate:Burst"] = "1",
        });
        var generator = server.Services.GetRequiredService<ITextGenerator>();

        // One permit and no queue: each generation can only be admitted once the previous stream has ended and
        // released its permit (as its sequence finishes, just after the last chunk, so wait for it).
        for (var i = 0; i < 5; i++)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    var request = new GenerationRequest { Prompt = "The", MaxTokens = 10, Sampling = new SamplingParameters { Temperature = 0.9f, Seed = (ulong)i } };
                    await ShakespeareGenerationTests.CollectAsync(await generator.GenerateAsync("lm", null, request, CancellationToken.None));
                    break;
                }
                catch (InferenceException e) when (e.Kind == InferenceErrorKind.ResourceExhausted && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10);
                }
            }
        }

        // The OpenAI API: 429 with OpenAI's error type and the same headers.
        using (var admitted = await server.Http.PostAsync("/v1/completions", Json("{\"model\": \"lm_rate\", \"prompt\": \"The\", \"max_tokens\": 5}")))
        {
            Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        }
        using var rejected = await server.Http.PostAsync("/v1/completions", Json("{\"model\": \"lm_rate\", \"prompt\": \"The\", \"max_tokens\": 5}"));
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.Equal("1", Header(rejected, "x-ratelimit-limit"));
        Assert.Equal("0", Header(rejected, "x-ratelimit-remaining"));
        Assert.Equal(Header(rejected, "Retry-After"), Header(rejected, "x-ratelimit-reset"));
        Assert.Contains("rate_limit_exceeded", await rejected.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("Admission:Models:m:Burst", "0", "Admission:Models:m: Burst must be at least 1")]
    [InlineData("Admission:Default:RequestsPerSecond", "-2", "Admission:Default: RequestsPerSecond must be a positive number")]
    [InlineData("Admission:MaxTenants", "0", "Admission:MaxTenants must be at least 1")]
    [InlineData("Admission:Default:QueueLength", "many", "QueueLength")]
    public void A_bad_admission_setting_stops_the_server_with_a_message_that_names_it(string key, string value, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => InferenceServer.Hosting.InferenceServerApp.Create(
            ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"], null, new Dictionary<string, string?> { [key] = value }));
        Assert.Contains(message, error.Message);
    }

    private static async Task<RunningServer> StartAsync(string model, Dictionary<string, string?> configuration)
    {
        var repo = Paths.NewTempDirectory("ratelimit-repo");
        GateBackend.WriteModel(repo, model, "max_batch_size: 0\n");
        return await RunningServer.StartAsync(repo, configuration, services => services.AddSingleton<IModelBackend, GateBackend>());
    }

    private static Task<HttpResponseMessage> InferAsync(RunningServer server, string model, string? tenant = null)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = new ByteArrayContent(GateBody) };
        if (tenant is not null)
        {
            message.Headers.Add("x-org", tenant);
            message.Headers.Add("x-tenant-id", tenant);
        }
        return server.Http.SendAsync(message);
    }

    private static async Task<HttpStatusCode> StatusAsync(RunningServer server, string model, string? tenant)
    {
        using var response = await InferAsync(server, model, tenant);
        return response.StatusCode;
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.Single() : throw new Xunit.Sdk.XunitException($"no {name} header");

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    private static WireTensor Floats() => new("x", "FP32", [1, 2], BitConverter.GetBytes(1f).Concat(BitConverter.GetBytes(2f)).ToArray());

    internal static async Task<double> RejectionsAsync(HttpClient admin, string model, string reason)
    {
        var prefix = $"inference_rejections_total{{model=\"{model}\",version=\"1\",reason=\"{reason}\"}} ";
        var line = (await admin.GetStringAsync("/metrics")).Split('\n').SingleOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.True(line is not null, $"no series {prefix}");
        return double.Parse(line[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
