using System.Globalization;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>The per-model request metrics on /metrics count exactly the requests sent (scraped over HTTP from the metrics port).</summary>
public sealed class RequestMetricsTests
{
    [Fact]
    public async Task Request_counters_and_histograms_equal_the_requests_sent()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        WireTensor[] inputs =
        [
            new("INPUT0", "INT32", [1, 16], new byte[64]),
            new("INPUT1", "INT32", [1, 16], new byte[64]),
        ];
        for (var i = 0; i < 5; i++)
        {
            await InferClient.InferAsync(server, (TensorEncoding)(i % 4), "simple", inputs);
        }
        // One client mistake: counted as a failure, not as a success.
        using (var bad = await server.Http.PostAsync("/v2/models/simple/infer", new StringContent("{\"inputs\": []}")))
        {
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        }

        using var metrics = server.NewMetricsClient();
        var text = await metrics.GetStringAsync("/metrics");
        double Value(string series) =>
            double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ", StringComparison.Ordinal))[(series.Length + 1)..], CultureInfo.InvariantCulture);

        const string simple = "model=\"simple\",version=\"1\"";
        Assert.Equal(5, Value($"inference_requests_total{{{simple},outcome=\"success\",status=\"OK\"}}"));
        Assert.Equal(1, Value($"inference_requests_total{{{simple},outcome=\"failure\",status=\"INVALID_ARGUMENT\"}}"));
        Assert.Equal(5, Value($"inference_request_duration_seconds_count{{{simple}}}"));
        Assert.Equal(5, Value($"inference_queue_duration_seconds_count{{{simple}}}"));
        // Sequential requests run one per execution: five executions of batch size 1.
        Assert.Equal(5, Value($"inference_compute_duration_seconds_count{{{simple}}}"));
        Assert.Equal(5, Value($"inference_batch_size_sum{{{simple}}}"));
        Assert.True(Value($"inference_request_duration_seconds_sum{{{simple}}}") > 0);
        // The repository's view at scrape time.
        Assert.Equal(1, Value($"inference_model_state{{{simple},state=\"READY\"}}"));
        Assert.Equal(0, Value($"inference_model_state{{{simple},state=\"UNAVAILABLE\"}}"));
        Assert.Equal(0, Value($"inference_requests_in_flight{{{simple}}}"));
        Assert.Equal(0, Value($"inference_queue_depth{{{simple}}}"));
        Assert.True(Value($"inference_model_load_duration_seconds{{{simple}}}") > 0);
        // A model nobody called has its series at zero.
        Assert.Equal(0, Value("inference_requests_total{model=\"linear\",version=\"2\",outcome=\"success\",status=\"OK\"}"));
    }
}
