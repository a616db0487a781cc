using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>Startup, readiness and liveness over REST, the admin port and gRPC's standard health service.</summary>
public sealed class ProbeTests
{
    [Fact]
    public async Task A_broken_model_does_not_hold_the_startup_probe_but_readiness_and_grpc_health_report_it()
    {
        var repo = Paths.NewTempDirectory("probes");
        SampleModels.Simple().Save(Path.Combine(repo, "good", "1", "model.onnx"));
        Directory.CreateDirectory(Path.Combine(repo, "broken", "1"));
        File.WriteAllText(Path.Combine(repo, "broken", "1", "model.onnx"), "not an onnx model");
        await using var server = await RunningServer.StartAsync(repo);
        using var admin = server.NewMetricsClient();

        foreach (var client in new[] { server.Http, admin })
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/startup")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/live")).StatusCode);
            // Strict readiness: the broken model keeps the server not ready.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/v2/health/ready")).StatusCode);
        }
        Assert.Equal("{\"started\":true}", await server.Http.GetStringAsync("/v2/health/startup"));

        var health = new Health.HealthClient(server.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "good" })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "broken" })).Status);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "nosuch" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        // Watch sends the current status first.
        using var watch = health.Watch(new HealthCheckRequest { Service = "good" });
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);
    }

    [Fact]
    public async Task Every_probe_passes_when_every_model_is_ready()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        foreach (var path in new[] { "/v2/health/startup", "/v2/health/live", "/v2/health/ready" })
        {
            Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync(path)).StatusCode);
        }
        var health = new Health.HealthClient(server.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }
}
