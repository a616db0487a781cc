using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using Grpc.Health.V1;
using InferenceServer.Backends;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// model_warmup on the real server: the startup probe waits for it, the model is LOADING meanwhile, the engine gets the
/// samples' data on every instance, and a failed or invalid warmup makes the model UNAVAILABLE with its reason.
/// The gate engine records what it ran; its gate holds a warmup for as long as a test needs.
/// </summary>
public sealed class WarmupTests
{
    private static Action<IServiceCollection> WithGate => services => services.AddSingleton<IModelBackend, GateBackend>();

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} did not happen within 60 s");
            await Task.Delay(20);
        }
    }

    private static async Task<Dictionary<string, JsonElement>> IndexAsync(RunningServer server)
    {
        using var response = await server.Http.PostAsync("/v2/repository/index", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!, m => m.Clone());
    }

    // Protobuf's JSON mapping leaves empty strings out (a READY model has no reason).
    private static string State(Dictionary<string, JsonElement> index, string model) =>
        index[model].TryGetProperty("state", out var state) ? state.GetString()! : "";

    private static string Reason(Dictionary<string, JsonElement> index, string model) =>
        index[model].TryGetProperty("reason", out var reason) ? reason.GetString()! : "";

    private static double Gauge(List<EndToEnd.MetricSample> samples, string name, string model, string? state = null) =>
        samples.Single(s => s.Name == name && s.Labels["model"] == model && s.Labels["version"] == "1"
            && (state is null || s.Labels["state"] == state)).Value;

    [Fact]
    public async Task Startup_stays_503_until_a_slow_warmup_completes_then_passes_beside_a_broken_model()
    {
        var repo = Paths.NewTempDirectory("warmup-probes");
        GateBackend.WriteModel(repo, "warm_slow", """
            max_batch_size: 4
            model_warmup:
              - name: held
                inputs:
                  x: {data_type: TYPE_FP32, dims: [2], zero_data: true}
            """);
        Directory.CreateDirectory(Path.Combine(repo, "warm_broken", "1"));
        File.WriteAllText(Path.Combine(repo, "warm_broken", "1", "model.onnx"), "not an onnx model");
        var gate = GateBackend.States["warm_slow"];
        gate.Open.Reset();

        await using var server = await RunningServer.StartWithoutWaitingAsync(repo, WithGate);
        try
        {
            using var admin = server.NewMetricsClient();
            var health = new Health.HealthClient(server.Channel);

            // The warmup is running (held by the gate) and the broken model has finished failing: still not started.
            await gate.WaitForExecutionsAsync(1);
            await WaitForAsync(async () => (await IndexAsync(server)) is var rows && rows.ContainsKey("warm_broken") && State(rows, "warm_broken") == "UNAVAILABLE",
                "the broken model's load");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await admin.GetAsync("/v2/health/startup")).StatusCode);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await admin.GetAsync("/v2/health/ready")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/live")).StatusCode);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/v2/models/warm_slow/ready")).StatusCode);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "warm_slow" })).Status);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
            // The index and the state gauge say what is happening.
            var loading = await IndexAsync(server);
            Assert.Equal("LOADING", State(loading, "warm_slow"));
            Assert.Equal("warming up", Reason(loading, "warm_slow"));
            Assert.Equal("1", loading["warm_slow"].GetProperty("version").GetString());
            var during = await EndToEnd.ScrapeAsync(admin);
            Assert.Equal(1, Gauge(during, "inference_model_state", "warm_slow", "LOADING"));
            Assert.Equal(0, Gauge(during, "inference_model_state", "warm_slow", "READY"));
            // A request meanwhile is refused as not ready, not as an unknown model.
            using (var early = await server.Http.PostAsync("/v2/models/warm_slow/infer",
                new StringContent("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}""")))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
                Assert.Contains("warming up", await early.Content.ReadAsStringAsync());
            }

            gate.Open.Set();
            await WaitForAsync(async () => (await admin.GetAsync("/v2/health/startup")).StatusCode == HttpStatusCode.OK, "startup");

            Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/models/warm_slow/ready")).StatusCode);
            // Strict readiness: the broken model keeps the server not ready; the index says why.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await admin.GetAsync("/v2/health/ready")).StatusCode);
            var index = await IndexAsync(server);
            Assert.Equal("READY", State(index, "warm_slow"));
            Assert.Equal("UNAVAILABLE", State(index, "warm_broken"));
            Assert.Contains("Protobuf parsing failed", Reason(index, "warm_broken"));
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "warm_slow" })).Status);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "warm_broken" })).Status);

            // The warmup took at least as long as the gate held it; that time is its own gauge.
            var after = await EndToEnd.ScrapeAsync(admin);
            Assert.True(Gauge(after, "inference_model_warmup_duration_seconds", "warm_slow") > 0);
            Assert.True(Gauge(after, "inference_model_load_duration_seconds", "warm_slow") >= 0);
            Assert.Equal(1, Gauge(after, "inference_model_state", "warm_slow", "READY"));
            Assert.Single(gate.Executions);
        }
        finally
        {
            gate.Open.Set();
        }
    }

    [Fact]
    public async Task Zero_random_and_file_data_reach_every_instance_count_times_with_the_batch_size()
    {
        var repo = Paths.NewTempDirectory("warmup-data");
        GateBackend.WriteModel(repo, "warm_data", """
            max_batch_size: 4
            instance_group: [{count: 2, kind: KIND_CPU}]
            model_warmup:
              - name: zeros
                batch_size: 2
                count: 3
                inputs:
                  x: {data_type: TYPE_FP32, dims: [3], zero_data: true}
              - name: noise
                inputs:
                  x: {data_type: TYPE_FP32, dims: [5], random_data: true}
              - name: recorded
                batch_size: 3
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4], input_data_file: x.bin}
            """);
        float[] recorded = [1.5f, -2f, 3.25f, 0.125f];
        Directory.CreateDirectory(Path.Combine(repo, "warm_data", "warmup"));
        File.WriteAllBytes(Path.Combine(repo, "warm_data", "warmup", "x.bin"), MemoryMarshal.AsBytes(recorded.AsSpan()).ToArray());
        var gate = GateBackend.States["warm_data"];

        await using var server = await RunningServer.StartAsync(repo, WithGate);
        Assert.True(server.Repository.IsReady("warm_data", ""));

        // (3 + 1 + 1) executions on each of the 2 instances, all before the model was ready.
        var executions = gate.Executions.ToArray();
        Assert.Equal(10, executions.Length);
        var zeros = executions.Where(e => e.Shape.SequenceEqual([2L, 3L])).ToArray();
        Assert.Equal(6, zeros.Length);
        Assert.All(zeros, e => Assert.All(e.Values, v => Assert.Equal(0f, v)));
        var noise = executions.Where(e => e.Shape.SequenceEqual([1L, 5L])).ToArray();
        Assert.Equal(2, noise.Length);
        Assert.All(noise, e => Assert.True(e.Values.Distinct().Count() > 1, "random data came out constant"));
        var fromFile = executions.Where(e => e.Shape.SequenceEqual([3L, 4L])).ToArray();
        Assert.Equal(2, fromFile.Length);
        Assert.All(fromFile, e => Assert.Equal([.. recorded, .. recorded, .. recorded], e.Values));

        // Warmup bypasses the queue and the statistics: no request was counted.
        using var admin = server.NewMetricsClient();
        var samples = await EndToEnd.ScrapeAsync(admin);
        Assert.Equal(0, samples.Single(s => s.Name == "inference_compute_duration_seconds_count" && s.Labels["model"] == "warm_data").Value);
        Assert.True(Gauge(samples, "inference_model_warmup_duration_seconds", "warm_data") > 0);

        // The warmed instances then serve requests.
        var served = await InferClient.InferAsync(server, TensorEncoding.GrpcRaw, "warm_data",
            [new WireTensor("x", "FP32", [1, 2], [.. BitConverter.GetBytes(4f), .. BitConverter.GetBytes(5f)])]);
        Assert.Equal([.. BitConverter.GetBytes(4f), .. BitConverter.GetBytes(5f)], Assert.Single(served).Data);
        Assert.Equal(11, gate.Executions.Count);
    }

    [Fact]
    public async Task Invalid_warmups_and_engine_failures_make_the_model_unavailable_with_the_reason()
    {
        var repo = Paths.NewTempDirectory("warmup-failures");
        GateBackend.WriteModel(repo, "warm_short_file", """
            max_batch_size: 4
            model_warmup:
              - name: short
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4], input_data_file: x.bin}
            """);
        Directory.CreateDirectory(Path.Combine(repo, "warm_short_file", "warmup"));
        File.WriteAllBytes(Path.Combine(repo, "warm_short_file", "warmup", "x.bin"), new byte[12]);
        GateBackend.WriteModel(repo, "warm_unknown_input", """
            max_batch_size: 4
            model_warmup:
              - name: typo
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4], zero_data: true}
                  z: {data_type: TYPE_FP32, dims: [4], zero_data: true}
            """);
        GateBackend.WriteModel(repo, "warm_engine_fails", """
            max_batch_size: 4
            instance_group: [{count: 2, kind: KIND_CPU}]
            model_warmup:
              - name: boom
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4], random_data: true}
            """);
        GateBackend.States["warm_engine_fails"].FailWith = "the device fell off the bus";
        GateBackend.WriteModel(repo, "warm_fine", """
            max_batch_size: 4
            model_warmup:
              - name: fine
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4], zero_data: true}
            """);

        await using var server = await RunningServer.StartAsync(repo, WithGate);
        var index = await IndexAsync(server);
        Assert.Equal("READY", State(index, "warm_fine"));
        foreach (var broken in new[] { "warm_short_file", "warm_unknown_input", "warm_engine_fails" })
        {
            Assert.Equal("UNAVAILABLE", State(index, broken));
        }
        Assert.StartsWith("invalid configuration: model_warmup 'short': input 'x': input_data_file 'x.bin' has 12 bytes, but 4 TYPE_FP32 elements take 16",
            Reason(index, "warm_short_file"));
        Assert.StartsWith("invalid configuration: model_warmup 'typo': the model has no input 'z'", Reason(index, "warm_unknown_input"));
        Assert.Equal("warmup 'boom' failed: the device fell off the bus", Reason(index, "warm_engine_fails"));
        // Invalid samples never reach the engine; the failing one ran and both of its instances were released.
        Assert.Empty(GateBackend.States["warm_short_file"].Executions);
        Assert.Empty(GateBackend.States["warm_unknown_input"].Executions);
        Assert.NotEmpty(GateBackend.States["warm_engine_fails"].Executions);
        Assert.Equal(2, GateBackend.States["warm_engine_fails"].Disposed);
        Assert.Equal(0, GateBackend.States["warm_fine"].Disposed);

        // Requests get 503 with the reason; the server is started but not (strictly) ready.
        using var response = await server.Http.PostAsync("/v2/models/warm_engine_fails/infer",
            new StringContent("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("warmup 'boom' failed: the device fell off the bus", await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/startup")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);
    }

    [Fact]
    public async Task A_generative_onnx_model_warms_up_on_random_token_ids_inside_its_vocabulary()
    {
        // bigram_lm's Gather rejects ids beyond its 65-token table, so random ids outside the vocabulary would fail the load.
        var repo = Paths.NewTempDirectory("warmup-lm");
        SampleModels.Bigram().Save(Path.Combine(repo, "lm", "1", "model.onnx"));
        File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"), SampleModels.BigramConfigYaml + """
            model_warmup:
              - name: prompt
                batch_size: 64
                count: 2
                inputs:
                  tokens: {data_type: TYPE_INT64, dims: [16], random_data: true}

            """);
        await using var server = await RunningServer.StartAsync(repo);
        var index = await IndexAsync(server);
        Assert.True(State(index, "lm") == "READY", Reason(index, "lm"));
        using var admin = server.NewMetricsClient();
        Assert.True(Gauge(await EndToEnd.ScrapeAsync(admin), "inference_model_warmup_duration_seconds", "lm") > 0);
    }

    [Fact]
    public async Task The_sample_simple_model_warms_up_and_models_without_warmup_report_zero()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        Assert.True(server.Repository.IsReady("simple", ""));
        using var admin = server.NewMetricsClient();
        var samples = await EndToEnd.ScrapeAsync(admin);
        Assert.True(Gauge(samples, "inference_model_warmup_duration_seconds", "simple") > 0);
        Assert.Equal(0, Gauge(samples, "inference_model_warmup_duration_seconds", "bigram_lm"));
        Assert.True(Gauge(samples, "inference_model_load_duration_seconds", "simple") > 0);
    }
}
