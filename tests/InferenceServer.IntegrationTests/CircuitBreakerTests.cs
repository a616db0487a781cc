using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.Admission;
using InferenceServer.Backends;
using InferenceServer.Observability;
using InferenceServer.Repository;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The circuit breaker around a model's engine, over REST and gRPC, with the gate test engine (made to fail, or held
/// while the test's clock moves past the slow-call duration) and a fallback model in the same repository. The breaker's
/// clock is the test's: open durations pass when the test says so.
/// </summary>
public sealed class CircuitBreakerTests
{
    private const string Json = """{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,2.5]}]}""";

    internal static async Task<(RunningServer Server, ManualTimeProvider Time)> StartAsync(string repository, CapturedLog? log = null)
    {
        var time = new ManualTimeProvider();
        var server = await RunningServer.StartAsync(repository, services =>
        {
            log?.Register(services);
            services.AddSingleton<IModelBackend, GateBackend>();
            services.AddSingleton(sp => new ModelRepository(
                sp.GetRequiredService<ModelRepositoryOptions>(), sp.GetServices<IModelBackend>(), sp.GetRequiredService<ILogger<ModelRepository>>(),
                sp.GetRequiredService<ServerMetrics>(), time));
        });
        return (server, time);
    }

    private static Task<HttpResponseMessage> RestAsync(RunningServer server, string model, string body = Json) =>
        server.Http.PostAsync($"/v2/models/{model}/infer", new StringContent(body, Encoding.UTF8, "application/json"));

    private static AsyncUnaryCall<Protocol.ModelInferResponse> GrpcCall(RunningServer server, string model) =>
        server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest(model, "", [new WireTensor("x", "FP32", [1, 2], [0, 0, 192, 63, 0, 0, 32, 64])], raw: true));

    private static CircuitState State(RunningServer server, string model) => server.Repository.Select(model, "").Breaker!.State;

    internal static async Task<double> MetricAsync(RunningServer server, string series)
    {
        using var metrics = server.NewMetricsClient();
        var line = (await metrics.GetStringAsync("/metrics")).Split('\n').SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no series {series}");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task FailAsync(RunningServer server, string model, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await RestAsync(server, model);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_failing_model_opens_the_fallback_serves_and_a_trial_after_recovery_closes_it()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-big", "circuit_breaker: {failure_rate_threshold: 50, sliding_window_size: 4, minimum_number_of_calls: 4, open_duration_ms: 30000, half_open_calls: 2, fallback_model: cb-small}\n");
        GateBackend.WriteModel(repo, "cb-small", "");
        var log = CapturedLog.For<ModelRepository>();
        var (server, time) = await StartAsync(repo, log);
        await using var _ = server;
        var big = GateBackend.States["cb-big"];
        var small = GateBackend.States["cb-small"];
        Assert.Equal(1, await MetricAsync(server, "inference_circuit_breaker_state{model=\"cb-big\",version=\"1\",state=\"CLOSED\"}"));

        big.FailWith = "engine on fire";
        await FailAsync(server, "cb-big", 4);
        Assert.Equal(CircuitState.Open, State(server, "cb-big"));
        Assert.Equal(1, await MetricAsync(server, "inference_circuit_breaker_state{model=\"cb-big\",version=\"1\",state=\"OPEN\"}"));
        Assert.Equal(0, await MetricAsync(server, "inference_circuit_breaker_state{model=\"cb-big\",version=\"1\",state=\"CLOSED\"}"));
        Assert.Contains(log.Lines, l => l.Contains(
            "Circuit breaker of model 'cb-big' version 1: CLOSED -> OPEN for 30 s (failure rate 100% over 4 call(s) (threshold 50%)); fallback model: cb-small", StringComparison.Ordinal));

        // Open: the fallback serves, and the response says so (REST header and parameter; model_name is who served).
        using (var response = await RestAsync(server, "cb-big"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("cb-small/1", Assert.Single(response.Headers.GetValues("x-served-by-model")));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("cb-small", body.RootElement.GetProperty("model_name").GetString());
            Assert.Equal("r1", body.RootElement.GetProperty("id").GetString());
            Assert.Equal("cb-small/1", body.RootElement.GetProperty("parameters").GetProperty("served_by_model").GetString());
            Assert.Equal("cb-big", body.RootElement.GetProperty("parameters").GetProperty("fallback_for").GetString());
            Assert.Equal([1.5f, 2.5f], body.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray());
        }
        using (var call = GrpcCall(server, "cb-big"))
        {
            var reply = await call.ResponseAsync;
            var headers = await call.ResponseHeadersAsync;
            Assert.Equal("cb-small/1", headers.GetValue("x-served-by-model"));
            Assert.Equal("cb-small", reply.ModelName);
            Assert.Equal("cb-small/1", reply.Parameters["served_by_model"].StringParam);
            Assert.Equal("cb-big", reply.Parameters["fallback_for"].StringParam);
        }
        Assert.Equal(4, big.Executions.Count);
        Assert.Equal(2, small.Executions.Count);
        Assert.Equal(2, await MetricAsync(server, "inference_circuit_breaker_fallback_total{model=\"cb-big\",version=\"1\",fallback=\"cb-small\"}"));

        // Recovered; once the open duration has passed, two trial calls go to the model itself and close the breaker.
        big.FailWith = null;
        time.Advance(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 2; i++)
        {
            using var response = await RestAsync(server, "cb-big");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.False(response.Headers.Contains("x-served-by-model"));
        }
        Assert.Equal(CircuitState.Closed, State(server, "cb-big"));
        Assert.Contains(log.Lines, l => l.Contains("Circuit breaker of model 'cb-big' version 1: OPEN -> HALF_OPEN (open duration passed)", StringComparison.Ordinal));
        Assert.Contains(log.Lines, l => l.Contains("Circuit breaker of model 'cb-big' version 1: HALF_OPEN -> CLOSED (2 trial call(s) succeeded", StringComparison.Ordinal));
        Assert.Equal(6, big.Executions.Count);
        Assert.Equal(2, small.Executions.Count);
        Assert.Equal(1, await MetricAsync(server, "inference_circuit_breaker_state{model=\"cb-big\",version=\"1\",state=\"CLOSED\"}"));
        using (var call = GrpcCall(server, "cb-big"))
        {
            var reply = await call.ResponseAsync;
            Assert.Equal("cb-big", reply.ModelName);
            Assert.False(reply.Parameters.ContainsKey("served_by_model"));
        }
    }

    [Fact]
    public async Task Without_a_fallback_an_open_breaker_answers_503_and_unavailable_without_calling_the_engine()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-alone", "circuit_breaker: {sliding_window_size: 2, minimum_number_of_calls: 2, open_duration_ms: 20000, half_open_calls: 1}\n");
        var (server, time) = await StartAsync(repo);
        await using var _ = server;
        var state = GateBackend.States["cb-alone"];
        state.FailWith = "engine on fire";
        await FailAsync(server, "cb-alone", 2);
        Assert.Equal(CircuitState.Open, State(server, "cb-alone"));

        time.Advance(TimeSpan.FromSeconds(5));
        using (var response = await RestAsync(server, "cb-alone"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("15", Assert.Single(response.Headers.GetValues("Retry-After")));
            var text = await response.Content.ReadAsStringAsync();
            Assert.Contains("circuit breaker open for model 'cb-alone'; retry in 15 s", text);
        }
        var error = await Assert.ThrowsAsync<RpcException>(() => GrpcCall(server, "cb-alone").ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("circuit breaker open for model 'cb-alone'", error.Status.Detail);
        Assert.Equal(2, state.Executions.Count);
        Assert.Equal(2, await MetricAsync(server, "inference_rejections_total{model=\"cb-alone\",version=\"1\",reason=\"circuit_open\"}"));
        Assert.Equal(2, await MetricAsync(server, "inference_requests_total{model=\"cb-alone\",version=\"1\",outcome=\"failure\",status=\"UNAVAILABLE\"}"));

        // Still failing: the single trial call fails and opens it again.
        time.Advance(TimeSpan.FromSeconds(15));
        await FailAsync(server, "cb-alone", 1);
        Assert.Equal(CircuitState.Open, State(server, "cb-alone"));
        using (var response = await RestAsync(server, "cb-alone"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }
        Assert.Equal(3, state.Executions.Count);
    }

    [Fact]
    public async Task A_slow_model_opens_the_breaker()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-slow", "circuit_breaker: {slow_call_duration_ms: 50, slow_call_rate_threshold: 100, sliding_window_size: 2, minimum_number_of_calls: 2, open_duration_ms: 60000}\n");
        var (server, time) = await StartAsync(repo);
        await using var _ = server;
        var state = GateBackend.States["cb-slow"];
        for (var i = 1; i <= 2; i++)
        {
            // The engine is held while the clock moves past the slow-call duration; the call itself succeeds.
            state.Open.Reset();
            var running = RestAsync(server, "cb-slow");
            await state.WaitForExecutionsAsync(i);
            time.Advance(TimeSpan.FromMilliseconds(80));
            state.Open.Set();
            using var response = await running;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.Equal(CircuitState.Open, State(server, "cb-slow"));
        var error = await Assert.ThrowsAsync<RpcException>(() => GrpcCall(server, "cb-slow").ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Equal(2, state.Executions.Count);
        Assert.Equal(1, await MetricAsync(server, "inference_circuit_breaker_state{model=\"cb-slow\",version=\"1\",state=\"OPEN\"}"));
    }

    [Fact]
    public async Task Fast_calls_keep_it_closed()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-fast", "circuit_breaker: {slow_call_duration_ms: 50, slow_call_rate_threshold: 50, sliding_window_size: 2, minimum_number_of_calls: 2}\n");
        var (server, time) = await StartAsync(repo);
        await using var _ = server;
        for (var i = 0; i < 4; i++)
        {
            using var response = await RestAsync(server, "cb-fast");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.Equal(CircuitState.Closed, State(server, "cb-fast"));
    }

    [Fact]
    public async Task Bad_input_never_opens_the_breaker()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-strict", "circuit_breaker: {failure_rate_threshold: 1, sliding_window_size: 2, minimum_number_of_calls: 2}\n");
        var (server, _) = await StartAsync(repo);
        await using var __ = server;
        var state = GateBackend.States["cb-strict"];
        for (var i = 0; i < 5; i++)
        {
            using var wrongType = await RestAsync(server, "cb-strict", """{"inputs":[{"name":"x","datatype":"INT32","shape":[1,2],"data":[1,2]}]}""");
            Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
            using var wrongName = await RestAsync(server, "cb-strict", """{"inputs":[{"name":"nope","datatype":"FP32","shape":[1,2],"data":[1,2]}]}""");
            Assert.Equal(HttpStatusCode.BadRequest, wrongName.StatusCode);
            var error = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(
                InferClient.BuildGrpcRequest("cb-strict", "", [new WireTensor("x", "FP32", [1, 3], [0, 0, 0, 0])], raw: true)).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        }
        Assert.Equal(CircuitState.Closed, State(server, "cb-strict"));
        Assert.Empty(state.Executions);
        using var good = await RestAsync(server, "cb-strict");
        Assert.Equal(HttpStatusCode.OK, good.StatusCode);
        Assert.Single(state.Executions);
    }

    [Fact]
    public async Task A_fallback_that_cannot_serve_is_503_and_an_invalid_section_makes_the_model_unavailable()
    {
        var repo = Paths.NewTempDirectory("breaker-repo");
        GateBackend.WriteModel(repo, "cb-orphan", "circuit_breaker: {sliding_window_size: 1, minimum_number_of_calls: 1, fallback_model: cb-missing}\n");
        GateBackend.WriteModel(repo, "cb-invalid", "circuit_breaker: {sliding_window_size: 3, minimum_number_of_calls: 4}\n");
        var (server, _) = await StartAsync(repo);
        await using var __ = server;
        GateBackend.States["cb-orphan"].FailWith = "engine on fire";
        await FailAsync(server, "cb-orphan", 1);
        using (var response = await RestAsync(server, "cb-orphan"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("circuit breaker open for model 'cb-orphan' and its fallback model 'cb-missing' cannot serve the request: unknown model 'cb-missing'",
                await response.Content.ReadAsStringAsync());
        }

        var invalid = server.Repository.Select("cb-invalid", "");
        Assert.Equal(ModelState.Unavailable, invalid.State);
        Assert.Equal("invalid configuration: circuit_breaker.minimum_number_of_calls must be between 1 and 3, not 4", invalid.Reason);
        Assert.Empty(GateBackend.States["cb-invalid"].Executions);
    }
}
