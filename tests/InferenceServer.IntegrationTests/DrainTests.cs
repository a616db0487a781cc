using System.Net;
using System.Text;
using Grpc.Core;
using Grpc.Health.V1;
using InferenceServer.Backends;
using InferenceServer.Lifecycle;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Graceful drain inside one process (the drain is started through the coordinator, as a signal would): readiness
/// fails at once, requests are served during the delay with their connections asked to close, and requests accepted
/// before the listeners close finish. The process-level behaviour (a real SIGTERM under load) is in DrainProcessTests.
/// </summary>
public sealed class DrainTests
{
    private static readonly byte[] GateBody = Encoding.UTF8.GetBytes(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 2], \"data\": [1, 2]}]}");

    [Fact]
    public async Task Readiness_fails_at_once_and_requests_in_the_delay_are_served_with_connections_asked_to_close()
    {
        var repo = Paths.NewTempDirectory("drain-repo");
        GateBackend.WriteModel(repo, "drain_ready", "max_batch_size: 0\n");
        await using var server = await RunningServer.StartAsync(repo, services => services.AddSingleton<IModelBackend, GateBackend>(), "--drain-delay", "600");
        using var admin = server.NewMetricsClient();
        var health = new Health.HealthClient(server.Channel);
        var drain = server.Services.GetRequiredService<DrainCoordinator>();
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(0, await MetricAsync(admin, "inference_server_drain_phase"));
        // One gRPC connection, in use before the drain.
        Assert.True((await server.Grpc.ServerReadyAsync(new ServerReadyRequest())).Ready);
        var connections = drain.Http2ConnectionsAccepted;

        Assert.True(drain.BeginDrain());
        Assert.False(drain.BeginDrain());

        // Every readiness answer is "not ready" from the first moment; liveness and startup are untouched.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await admin.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/v2/models/drain_ready/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/startup")).StatusCode);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "drain_ready" })).Status);
        Assert.False((await server.Grpc.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.Equal(1, await MetricAsync(admin, "inference_server_drain_phase"));

        // REST requests are still served, each telling the client to close its connection.
        using (var served = await server.Http.PostAsync("/v2/models/drain_ready/infer", new ByteArrayContent(GateBody)))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.True(served.Headers.ConnectionClose, "no Connection: close during the drain delay");
        }
        // gRPC calls are still served; the connection they used was sent GOAWAY, so the client opens a new one.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (drain.Http2ConnectionsAccepted == connections)
        {
            Assert.True(DateTime.UtcNow < deadline, "the gRPC client never reconnected: no GOAWAY");
            var response = await server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("drain_ready", "", [Floats()], raw: true));
            Assert.Single(response.Outputs);
        }
        Assert.Equal(DrainPhase.Draining, server.Services.GetRequiredService<ServerLifecycle>().Phase);
    }

    [Fact]
    public async Task After_the_delay_the_listeners_close_and_accepted_requests_finish()
    {
        var repo = Paths.NewTempDirectory("drain-repo");
        GateBackend.WriteModel(repo, "drain_close", "max_batch_size: 0\n");
        var server = await RunningServer.StartAsync(repo, services => services.AddSingleton<IModelBackend, GateBackend>(), "--drain-delay", "600");
        var state = GateBackend.States["drain_close"];
        var drain = server.Services.GetRequiredService<DrainCoordinator>();
        var lifecycle = server.Services.GetRequiredService<ServerLifecycle>();
        try
        {
            // One request running in the engine and one queued behind it, over each protocol.
            state.Open.Reset();
            var rest = server.Http.PostAsync("/v2/models/drain_close/infer", new ByteArrayContent(GateBody));
            await state.WaitForExecutionsAsync(1);
            var grpc = server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("drain_close", "", [Floats()], raw: true)).ResponseAsync;
            var queueDeadline = DateTime.UtcNow.AddSeconds(30);
            while (server.Repository.Select("drain_close", "").QueueLength != 1)
            {
                Assert.True(DateTime.UtcNow < queueDeadline, "the gRPC request never queued");
                await Task.Delay(5);
            }

            Assert.True(drain.BeginDrain());
            drain.SkipDelay();
            await drain.Closing.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(DrainPhase.Closing, lifecycle.Phase);

            // The listeners close: a new connection is refused, while the accepted requests are still waiting.
            var refusedDeadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                using var fresh = new HttpClient { BaseAddress = server.Http.BaseAddress };
                try
                {
                    using var _ = await fresh.GetAsync("/v2/health/live");
                }
                catch (HttpRequestException)
                {
                    break;
                }
                Assert.True(DateTime.UtcNow < refusedDeadline, "the REST listener still accepts connections");
                await Task.Delay(10);
            }
            Assert.False(rest.IsCompleted);
            Assert.False(grpc.IsCompleted);
            Assert.Equal(2, drain.ActiveRequests);

            // Released, both complete successfully, and then the host stops.
            state.Open.Set();
            using (var done = await rest)
            {
                Assert.Equal(HttpStatusCode.OK, done.StatusCode);
            }
            Assert.Single((await grpc).Outputs);
            await server.Stopped.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            state.Open.Set();
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_request_still_running_at_the_drain_timeout_is_cut_and_logged_and_the_host_stops()
    {
        var repo = Paths.NewTempDirectory("drain-repo");
        GateBackend.WriteModel(repo, "drain_cut", "max_batch_size: 0\n");
        var log = CapturedLog.For<DrainCoordinator>();
        var server = await RunningServer.StartAsync(repo, services =>
        {
            services.AddSingleton<IModelBackend, GateBackend>();
            log.Register(services);
        }, "--drain-delay", "0", "--drain-timeout", "1");
        var state = GateBackend.States["drain_cut"];
        try
        {
            state.Open.Reset();
            var running = server.Http.PostAsync("/v2/models/drain_cut/infer", new ByteArrayContent(GateBody));
            await state.WaitForExecutionsAsync(1);

            Assert.True(server.Services.GetRequiredService<DrainCoordinator>().BeginDrain());
            // The host stops after the timeout although the request never finished; the client's connection is cut.
            await server.Stopped.WaitAsync(TimeSpan.FromSeconds(60));
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => running);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!log.Lines.Any(l => l.StartsWith("Drain timeout", StringComparison.Ordinal)))
            {
                Assert.True(DateTime.UtcNow < deadline, "nothing logged about the cut request: " + string.Join(" | ", log.Lines));
                await Task.Delay(10);
            }
            Assert.Contains(log.Lines, l => l.Contains("cutting 1 request(s) still running: POST /v2/models/drain_cut/infer", StringComparison.Ordinal));
        }
        finally
        {
            state.Open.Set();
            await server.DisposeAsync();
        }
    }

    private static WireTensor Floats() => new("x", "FP32", [1, 2], BitConverter.GetBytes(1f).Concat(BitConverter.GetBytes(2f)).ToArray());

    private static async Task<double> MetricAsync(HttpClient admin, string series)
    {
        var line = (await admin.GetStringAsync("/metrics")).Split('\n').SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no series {series}");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
