using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// A real Prometheus server (the Debian package, which .ci/run installs) scrapes the server's metrics port on loopback;
/// the test asks Prometheus' HTTP API for what it stored.
/// </summary>
public sealed class PrometheusScrapeTests
{
    private const int Requests = 7;

    [Fact]
    public async Task Prometheus_scrapes_the_server_and_stores_exactly_the_requests_sent()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        WireTensor[] inputs =
        [
            new("INPUT0", "INT32", [1, 16], new byte[64]),
            new("INPUT1", "INT32", [1, 16], new byte[64]),
        ];
        for (var i = 0; i < Requests; i++)
        {
            await InferClient.InferAsync(server, TensorEncoding.GrpcRaw, "simple", inputs);
        }

        await using var prometheus = await PrometheusProcess.StartAsync($$"""
            - job_name: inference
              static_configs:
                - targets: ["127.0.0.1:{{server.Endpoints.MetricsPort}}"]
            """);
        Assert.Equal(1, await prometheus.QueryUntilAsync("up{job=\"inference\"}", 1));
        Assert.Equal(Requests, await prometheus.QueryUntilAsync("inference_requests_total{job=\"inference\",model=\"simple\",outcome=\"success\"}", Requests));
        Assert.Equal(Requests, await prometheus.QueryUntilAsync("inference_request_duration_seconds_count{job=\"inference\",model=\"simple\"}", Requests));
        Assert.Equal(Requests, await prometheus.QueryUntilAsync("inference_batch_size_sum{job=\"inference\",model=\"simple\"}", Requests));
    }
}
