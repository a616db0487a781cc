using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using InferenceServer.Backends.TorchSharp;
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
        var binary = new[] { "/usr/bin/prometheus", "/usr/local/bin/prometheus" }.FirstOrDefault(File.Exists);
        Assert.True(binary is not null, "prometheus is not installed (apt-get install prometheus; .ci/run does it)");
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

        var dir = Paths.NewTempDirectory("prometheus");
        var port = FreePort();
        File.WriteAllText(Path.Combine(dir, "prometheus.yml"), $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: inference
                static_configs:
                  - targets: ["127.0.0.1:{server.Endpoints.MetricsPort}"]
            """);
        var info = LibStdCxxCompat.ChildProcess(binary!,
            $"--config.file={Path.Combine(dir, "prometheus.yml")} --storage.tsdb.path={Path.Combine(dir, "data")} --web.listen-address=127.0.0.1:{port}");
        info.RedirectStandardError = true;
        info.RedirectStandardOutput = true;
        using var prometheus = System.Diagnostics.Process.Start(info)!;
        var log = prometheus.StandardError.ReadToEndAsync();
        try
        {
            using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(1, await QueryUntilAsync(api, "up{job=\"inference\"}", 1, log));
            Assert.Equal(Requests, await QueryUntilAsync(api, "inference_requests_total{job=\"inference\",model=\"simple\",outcome=\"success\"}", Requests, log));
            Assert.Equal(Requests, await QueryUntilAsync(api, "inference_request_duration_seconds_count{job=\"inference\",model=\"simple\"}", Requests, log));
            Assert.Equal(Requests, await QueryUntilAsync(api, "inference_batch_size_sum{job=\"inference\",model=\"simple\"}", Requests, log));
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync();
        }
    }

    /// <summary>Asks Prometheus for <paramref name="query"/> until it returns <paramref name="expected"/> (scrapes come every second).</summary>
    private static async Task<double> QueryUntilAsync(HttpClient api, string query, double expected, Task<string> log)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        double? last = null;
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(log.IsCompleted, "prometheus exited: " + (log.IsCompleted ? await log : ""));
            try
            {
                using var doc = JsonDocument.Parse(await api.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(query)));
                var result = doc.RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() == 1)
                {
                    last = double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                    if (last == expected)
                    {
                        return last.Value;
                    }
                }
            }
            catch (HttpRequestException)
            {
                // Prometheus is still starting.
            }
            await Task.Delay(200);
        }
        return last ?? double.NaN;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
