using System.Net;
using System.Text;
using Grpc.Core;
using InferenceServer.Backends;
using InferenceServer.ModelBuilder;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The scheduler: dynamic batching, shape separation, the queue delay, the bounded queue, deadlines, cancellation,
/// priorities and instances. Each test asserts what the engine saw (executions, batch statistics), not timings.
/// </summary>
public sealed class SchedulerTests
{
    private static Task<RunningServer> StartAsync(string repository) =>
        RunningServer.StartAsync(repository, services => services.AddSingleton<IModelBackend, GateBackend>());

    private static WireTensor Floats(long rows, long columns, float marker) =>
        new("x", "FP32", [rows, columns], Enumerable.Range(0, (int)(rows * columns)).SelectMany(i => BitConverter.GetBytes(marker + i * 0.001f)).ToArray());

    private static Task<IReadOnlyList<WireTensor>> InferAsync(RunningServer server, string model, WireTensor input, TensorEncoding encoding = TensorEncoding.GrpcRaw) =>
        InferClient.InferAsync(server, encoding, model, [input]);

    private static async Task WaitForQueueAsync(RunningServer server, string model, int length)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (server.Repository.Select(model, "").QueueLength != length)
        {
            Assert.True(DateTime.UtcNow < deadline, $"queue length stayed {server.Repository.Select(model, "").QueueLength}, expected {length}");
            await Task.Delay(5);
        }
    }

    /// <summary>A server with one gate model whose (single) instance is busy with a first request, so the next ones queue.</summary>
    private sealed record BlockedGate(RunningServer Server, GateState State, Task<IReadOnlyList<WireTensor>> Running) : IAsyncDisposable
    {
        /// <summary>Lets the engine go on and waits for the first request.</summary>
        public async Task ReleaseAsync()
        {
            State.Open.Set();
            await Running;
        }

        public async ValueTask DisposeAsync()
        {
            State.Open.Set();
            await Server.DisposeAsync();
        }
    }

    private static async Task<BlockedGate> StartBlockedAsync(string configYaml)
    {
        var repo = Paths.NewTempDirectory("gate-repo");
        GateBackend.WriteModel(repo, "gate", configYaml);
        var server = await StartAsync(repo);
        var state = GateBackend.States["gate"];
        state.Open.Reset();
        var running = InferAsync(server, "gate", Floats(1, 2, 0));
        await state.WaitForExecutionsAsync(1);
        return new BlockedGate(server, state, running);
    }

    [Fact]
    public async Task Concurrent_requests_are_batched_and_each_gets_its_unbatched_result()
    {
        // A small MLP with random weights and a symbolic batch dimension; the same graph loaded in-process is the reference.
        var repo = Paths.NewTempDirectory("batching-repo");
        var random = new Random(7);
        float[] W(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var modelPath = Path.Combine(repo, "mlp", "1", "model.onnx");
        new OnnxGraphBuilder("mlp")
            .Input("x", TensorElementKind.Float, "batch", 32)
            .Output("y", TensorElementKind.Float, "batch", 8)
            .Initializer("w1", [32, 64], W(32 * 64)).Initializer("b1", [64], W(64))
            .Initializer("w2", [64, 8], W(64 * 8)).Initializer("b2", [8], W(8))
            .Node("MatMul", ["x", "w1"], ["h0"]).Node("Add", ["h0", "b1"], ["h1"]).Node("Relu", ["h1"], ["h2"])
            .Node("MatMul", ["h2", "w2"], ["h3"]).Node("Add", ["h3", "b2"], ["y"])
            .Save(modelPath);
        File.WriteAllText(Path.Combine(repo, "mlp", "config.yaml"),
            "max_batch_size: 16\ndynamic_batching:\n  max_queue_delay_microseconds: 20000\ninstance_group: [{count: 1, kind: KIND_CPU}]\n");
        await using var server = await StartAsync(repo);
        using var reference = new InferenceSession(modelPath);

        var requests = Enumerable.Range(0, 240).Select(i =>
        {
            var rows = 1 + (i % 3);
            var values = Enumerable.Range(0, rows * 32).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            return new WireTensor("x", "FP32", [rows, 32], values.SelectMany(BitConverter.GetBytes).ToArray());
        }).ToArray();
        using var gate = new SemaphoreSlim(32);
        var results = await Task.WhenAll(requests.Select(async (input, i) =>
        {
            await gate.WaitAsync();
            try
            {
                return await InferAsync(server, "mlp", input, (TensorEncoding)(i % 4));
            }
            finally
            {
                gate.Release();
            }
        }));

        for (var i = 0; i < requests.Length; i++)
        {
            using var x = OrtValue.CreateTensorValueFromMemory(requests[i].ToDoubles().Select(d => (float)d).ToArray(), requests[i].Shape);
            using var outputs = reference.Run(new RunOptions(), ["x"], [x], ["y"]);
            var expected = new WireTensor("y", "FP32", outputs[0].GetTensorTypeAndShape().Shape, outputs[0].GetTensorMutableRawData().ToArray());
            Assert.Null(expected.Compare(Assert.Single(results[i])));
        }

        var stats = Assert.Single((await server.Grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "mlp" })).ModelStats);
        Assert.Equal((ulong)requests.Sum(r => r.Shape[0]), stats.InferenceCount);
        Assert.Equal(240UL, stats.InferenceStats.Success.Count);
        Assert.True(stats.ExecutionCount < 240, $"{stats.ExecutionCount} executions for 240 requests: nothing was batched");
        Assert.Contains(stats.BatchStats, b => b.BatchSize > 3);
        Assert.All(stats.BatchStats, b => Assert.InRange(b.BatchSize, 1UL, 16UL));
        Assert.Equal(stats.ExecutionCount, (ulong)stats.BatchStats.Sum(b => (long)b.ComputeInfer.Count));
    }

    [Fact]
    public async Task Requests_with_different_shapes_never_share_a_batch()
    {
        var repo = Paths.NewTempDirectory("shapes-repo");
        GateBackend.WriteModel(repo, "gate", "max_batch_size: 8\ndynamic_batching: {}\n");
        await using var server = await StartAsync(repo);
        var state = GateBackend.States["gate"];

        state.Open.Reset();
        var blocker = InferAsync(server, "gate", Floats(1, 2, 100));
        await state.WaitForExecutionsAsync(1);
        var queued = new List<Task<IReadOnlyList<WireTensor>>>();
        for (var i = 0; i < 3; i++)
        {
            queued.Add(InferAsync(server, "gate", Floats(1, 2, i)));
            queued.Add(InferAsync(server, "gate", Floats(1, 3, 10 + i)));
        }
        await WaitForQueueAsync(server, "gate", 6);
        state.Open.Set();
        await blocker;
        var results = await Task.WhenAll(queued);

        var executions = state.Executions.Skip(1).ToArray();
        Assert.Equal(2, executions.Length);
        Assert.Contains(executions, e => e.Rows == 3 && e.Shape[1] == 2);
        Assert.Contains(executions, e => e.Rows == 3 && e.Shape[1] == 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(Floats(1, 2, i).Data, Assert.Single(results[2 * i]).Data);
            Assert.Equal(Floats(1, 3, 10 + i).Data, Assert.Single(results[2 * i + 1]).Data);
        }
    }

    [Fact]
    public async Task The_queue_delay_gathers_a_late_companion_but_does_not_hold_a_lone_request()
    {
        var repo = Paths.NewTempDirectory("delay-repo");
        GateBackend.WriteModel(repo, "gate", "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_microseconds: 2000000\n  preferred_batch_size: [2]\n");
        await using var server = await StartAsync(repo);
        var state = GateBackend.States["gate"];

        // Two requests arriving within the delay share one execution (and the preferred size dispatches it at once).
        var first = InferAsync(server, "gate", Floats(1, 2, 1));
        await WaitForQueueAsync(server, "gate", 1);
        var second = InferAsync(server, "gate", Floats(1, 2, 2));
        await Task.WhenAll(first, second);
        Assert.Equal(2, Assert.Single(state.Executions).Rows);

        // A lone request waits out the delay for company (the scheduler's own queue statistic says how long),
        // and is then dispatched alone rather than held indefinitely.
        var before = Assert.Single((await server.Grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "gate" })).ModelStats).InferenceStats.Queue;
        var lone = InferAsync(server, "gate", Floats(1, 2, 3));
        Assert.Same(lone, await Task.WhenAny(lone, Task.Delay(TimeSpan.FromSeconds(30))));
        Assert.Equal(1, state.Executions.Last().Rows);
        Assert.Equal(2, state.Executions.Count);
        var after = Assert.Single((await server.Grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "gate" })).ModelStats).InferenceStats.Queue;
        Assert.Equal(before.Count + 1, after.Count);
        Assert.True(after.Ns - before.Ns >= 2_000_000_000UL, $"the lone request was dispatched after {(after.Ns - before.Ns) / 1e6} ms, before the 2000 ms delay");
    }

    [Fact]
    public async Task A_full_queue_rejects_at_once_with_retry_after()
    {
        await using var gate = await StartBlockedAsync("max_batch_size: 0\ndynamic_batching:\n  default_queue_policy: {max_queue_size: 2}\n");
        var (server, state) = (gate.Server, gate.State);
        var waiting = new[] { InferAsync(server, "gate", Floats(1, 2, 1)), InferAsync(server, "gate", Floats(1, 2, 2)) };
        await WaitForQueueAsync(server, "gate", 2);

        var (body, _) = InferClient.BuildRestBody([Floats(1, 2, 3)], binary: false);
        using (var rejected = await server.Http.PostAsync("/v2/models/gate/infer", new ByteArrayContent(body)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
            Assert.True(rejected.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "Retry-After missing");
            Assert.Contains("queue is full", await rejected.Content.ReadAsStringAsync());
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("gate", "", [Floats(1, 2, 4)], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.NotNull(e.Trailers.Get("grpc-retry-pushback-ms"));

        await gate.ReleaseAsync();
        await Task.WhenAll(waiting);
        Assert.Equal(3, state.Executions.Count);
        // Both rejections are counted by reason and as failures with their status.
        Assert.Equal(2, await MetricAsync(server, "inference_rejections_total{model=\"gate\",version=\"1\",reason=\"queue_full\"}"));
        Assert.Equal(2, await MetricAsync(server, "inference_requests_total{model=\"gate\",version=\"1\",outcome=\"failure\",status=\"RESOURCE_EXHAUSTED\"}"));
        Assert.Equal(3, await MetricAsync(server, "inference_requests_total{model=\"gate\",version=\"1\",outcome=\"success\",status=\"OK\"}"));
    }

    private static async Task<double> MetricAsync(RunningServer server, string series)
    {
        using var metrics = server.NewMetricsClient();
        var line = (await metrics.GetStringAsync("/metrics")).Split('\n').SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no series {series}");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_request_whose_deadline_passes_in_the_queue_never_reaches_the_engine()
    {
        await using var gate = await StartBlockedAsync("max_batch_size: 0\n");
        var (server, state) = (gate.Server, gate.State);

        // The timeout parameter (microseconds) over REST, and the gRPC deadline.
        var body = Encoding.UTF8.GetBytes("{\"parameters\": {\"timeout\": 50000}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 2], \"data\": [7, 7]}]}");
        using (var expired = await server.Http.PostAsync("/v2/models/gate/infer", new ByteArrayContent(body)))
        {
            Assert.Equal(HttpStatusCode.GatewayTimeout, expired.StatusCode);
            Assert.Contains("deadline", await expired.Content.ReadAsStringAsync());
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(
            InferClient.BuildGrpcRequest("gate", "", [Floats(1, 2, 8)], raw: true), deadline: DateTime.UtcNow.AddMilliseconds(100)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        await WaitForQueueAsync(server, "gate", 0);

        await gate.ReleaseAsync();
        var after = InferAsync(server, "gate", Floats(1, 2, 9));
        await after;
        Assert.Equal([0f, 9f], state.Executions.Select(x => x.Values[0]));
        // The gRPC client gives up at its own deadline, possibly before the server has dropped the request and counted
        // the failure: wait for the count rather than race it.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        ModelStatistics stats;
        while ((stats = Assert.Single((await server.Grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "gate" })).ModelStats)).InferenceStats.Fail.Count < 2
            && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
        Assert.Equal(2UL, stats.ExecutionCount);
        Assert.Equal(2, await MetricAsync(server, "inference_rejections_total{model=\"gate\",version=\"1\",reason=\"deadline\"}"));
        Assert.Equal(2, await MetricAsync(server, "inference_requests_total{model=\"gate\",version=\"1\",outcome=\"failure\",status=\"DEADLINE_EXCEEDED\"}"));
        Assert.Equal(2UL, stats.InferenceStats.Fail.Count);
    }

    [Fact]
    public async Task A_cancelled_call_is_dropped_from_the_queue()
    {
        await using var gate = await StartBlockedAsync("max_batch_size: 0\n");
        var (server, state) = (gate.Server, gate.State);
        using var cts = new CancellationTokenSource();
        var call = server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("gate", "", [Floats(1, 2, 5)], raw: true), cancellationToken: cts.Token);
        await WaitForQueueAsync(server, "gate", 1);
        cts.Cancel();
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        await WaitForQueueAsync(server, "gate", 0);

        await gate.ReleaseAsync();
        await InferAsync(server, "gate", Floats(1, 2, 6));
        Assert.Equal([0f, 6f], state.Executions.Select(x => x.Values[0]));
    }

    [Fact]
    public async Task Higher_priority_requests_run_first()
    {
        await using var gate = await StartBlockedAsync("max_batch_size: 0\ndynamic_batching:\n  priority_levels: 3\n  default_priority_level: 2\n");
        var (server, state) = (gate.Server, gate.State);

        Task<ModelInferResponse> Send(float marker, ulong? priority)
        {
            var request = InferClient.BuildGrpcRequest("gate", "", [Floats(1, 2, marker)], raw: true);
            if (priority is ulong p)
            {
                request.Parameters["priority"] = new InferParameter { Uint64Param = p };
            }
            return server.Grpc.ModelInferAsync(request).ResponseAsync;
        }
        var sent = new List<Task<ModelInferResponse>>();
        foreach (var (marker, priority) in new (float, ulong?)[] { (31, 3), (21, null), (32, 3), (11, 1), (22, 0), (12, 1) })
        {
            // One at a time, so arrival order within a level is known.
            sent.Add(Send(marker, priority));
            await WaitForQueueAsync(server, "gate", sent.Count);
        }
        var invalid = await Assert.ThrowsAsync<RpcException>(() => Send(99, 4));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);

        await gate.ReleaseAsync();
        await Task.WhenAll(sent);
        Assert.Equal([0f, 11f, 12f, 21f, 22f, 31f, 32f], state.Executions.Select(x => x.Values[0]));
    }

    [Fact]
    public async Task Instances_run_requests_concurrently()
    {
        var repo = Paths.NewTempDirectory("instances-repo");
        GateBackend.WriteModel(repo, "gate", "max_batch_size: 0\ninstance_group:\n  - count: 2\n    kind: KIND_CPU\n");
        await using var server = await StartAsync(repo);
        var state = GateBackend.States["gate"];

        state.Open.Reset();
        var calls = Enumerable.Range(0, 3).Select(i => InferAsync(server, "gate", Floats(1, 2, i))).ToArray();
        await state.WaitForExecutionsAsync(2);
        await WaitForQueueAsync(server, "gate", 1);
        Assert.Equal(2, state.MaxConcurrent);
        state.Open.Set();
        await Task.WhenAll(calls);
        Assert.Equal(3, state.Executions.Count);

        var config = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "gate" })).Config;
        Assert.Equal(2, Assert.Single(config.InstanceGroup).Count);
    }
}
