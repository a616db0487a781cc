using System.Collections.Concurrent;
using System.Globalization;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The process and .NET runtime metrics, and the NVML GPU gauges: absent without NVML, and equal to a fake NVML's
/// readings (compiled with gcc) per device when there is one.
/// </summary>
public sealed class GpuMetricsTests
{
    [Fact]
    public async Task Without_nvml_there_are_no_gpu_metrics_and_the_process_and_runtime_metrics_are_exported()
    {
        // What a machine without an NVIDIA driver (this one, CI) sees: the library cannot be loaded.
        var missing = Path.Combine(Paths.NewTempDirectory("no-nvml"), "libnvidia-ml.so.1");
        var log = CapturedLog.For<global::InferenceServer.Observability.GpuMetrics>();
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, log.Register, "--nvml-library", missing);

        var text = await ScrapeAsync(server);
        Assert.DoesNotContain("inference_gpu_", text);
        Assert.Single(log.Lines, l => l == $"GPU metrics are off: {missing} could not be loaded (no NVIDIA driver on this machine?)");

        Assert.True(Value(text, "process_cpu_seconds_total") > 0);
        var started = DateTimeOffset.FromUnixTimeMilliseconds((long)(Value(text, "process_start_time_seconds") * 1000));
        Assert.InRange(started, System.Diagnostics.Process.GetCurrentProcess().StartTime.AddSeconds(-1), DateTimeOffset.Now);
        Assert.True(Value(text, "process_working_set_bytes") > 0);
        Assert.True(Value(text, "process_virtual_memory_bytes") > 0);
        Assert.True(Value(text, "process_private_memory_bytes") > 0);
        Assert.True(Value(text, "process_num_threads") > 0);
        Assert.True(Value(text, "process_open_handles") > 0);
        Assert.True(Value(text, "dotnet_total_memory_bytes") > 0);
        Assert.True(Value(text, "dotnet_collection_count_total{generation=\"0\"}") >= 0);
        // Registered once in the server's registry: one family each.
        Assert.Single(Lines(text), l => l.StartsWith("# TYPE process_cpu_seconds_total ", StringComparison.Ordinal));
        Assert.Single(Lines(text), l => l.StartsWith("# TYPE dotnet_total_memory_bytes ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_nvml_that_fails_to_initialise_leaves_the_gpu_metrics_absent()
    {
        // NVML_ERROR_DRIVER_NOT_LOADED: the library is there, the driver is not.
        using var nvml = await FakeNvml.CompileAsync(initResult: 9);
        var log = CapturedLog.For<global::InferenceServer.Observability.GpuMetrics>();
        await using (var server = await RunningServer.StartAsync(Paths.SampleModels, log.Register, "--nvml-library", nvml.Path))
        {
            Assert.DoesNotContain("inference_gpu_", await ScrapeAsync(server));
        }
        Assert.Single(log.Lines, l => l == "GPU metrics are off: nvmlInit_v2 failed: Driver Not Loaded (NVML error 9)");
        Assert.Equal(1, nvml.InitCalls);
        Assert.Equal(0, nvml.ShutdownCalls);
    }

    [Fact]
    public async Task The_gpu_gauges_equal_the_nvml_readings_of_each_device_at_each_scrape()
    {
        using var nvml = await FakeNvml.CompileAsync();
        var log = CapturedLog.For<global::InferenceServer.Observability.GpuMetrics>();
        await using (var server = await RunningServer.StartAsync(Paths.SampleModels, log.Register, "--nvml-library", nvml.Path))
        {
            var gpu0 = $"{{gpu=\"0\",uuid=\"{FakeNvml.Uuid0}\",name=\"{FakeNvml.Name0}\"}}";
            var gpu1 = $"{{gpu=\"1\",uuid=\"{FakeNvml.Uuid1}\",name=\"{FakeNvml.Name1}\"}}";
            var text = await ScrapeAsync(server);
            Assert.Equal(FakeNvml.Utilization0 / 100.0, Value(text, "inference_gpu_utilization_ratio" + gpu0));
            Assert.Equal(FakeNvml.Utilization1 / 100.0, Value(text, "inference_gpu_utilization_ratio" + gpu1));
            Assert.Equal(FakeNvml.MemoryUsed0, Value(text, "inference_gpu_memory_used_bytes" + gpu0));
            Assert.Equal(FakeNvml.MemoryUsed1, Value(text, "inference_gpu_memory_used_bytes" + gpu1));
            Assert.Equal(FakeNvml.MemoryTotal0, Value(text, "inference_gpu_memory_total_bytes" + gpu0));
            Assert.Equal(FakeNvml.MemoryTotal1, Value(text, "inference_gpu_memory_total_bytes" + gpu1));
            Assert.Equal(FakeNvml.PowerMilliwatts0 / 1000.0, Value(text, "inference_gpu_power_watts" + gpu0));
            Assert.Equal(FakeNvml.Temperature0, Value(text, "inference_gpu_temperature_celsius" + gpu0));
            Assert.Equal(FakeNvml.Temperature1, Value(text, "inference_gpu_temperature_celsius" + gpu1));
            // GPU 1 has no power sensor: no series for it, rather than a zero.
            Assert.DoesNotContain("inference_gpu_power_watts{gpu=\"1\"", text);
            Assert.Equal(2, Lines(text).Count(l => l.StartsWith("inference_gpu_utilization_ratio{", StringComparison.Ordinal)));

            // Readings are taken at scrape time; one that starts failing drops its series and the scrape goes on.
            nvml.SetUtilization(0, 5);
            nvml.LoseTemperature(1);
            text = await ScrapeAsync(server);
            Assert.Equal(0.05, Value(text, "inference_gpu_utilization_ratio" + gpu0));
            Assert.Equal(FakeNvml.Temperature0, Value(text, "inference_gpu_temperature_celsius" + gpu0));
            Assert.DoesNotContain("inference_gpu_temperature_celsius{gpu=\"1\"", text);
            Assert.Equal(FakeNvml.MemoryUsed1, Value(text, "inference_gpu_memory_used_bytes" + gpu1));
            Assert.True(Value(text, "process_cpu_seconds_total") > 0);
            Assert.Single(log.Lines, l => l.StartsWith("GPU 1: NVML cannot give its temperature (GPU is lost (NVML error 15))", StringComparison.Ordinal));
            Assert.Single(log.Lines, l => l.StartsWith("GPU metrics are on: 2 GPU(s) from NVML", StringComparison.Ordinal));
            Assert.Equal(0, nvml.ShutdownCalls);
        }
        // Stopping the server shuts NVML down.
        Assert.Equal(1, nvml.InitCalls);
        Assert.Equal(1, nvml.ShutdownCalls);
    }

    private static async Task<string> ScrapeAsync(RunningServer server)
    {
        using var metrics = server.NewMetricsClient();
        return await metrics.GetStringAsync("/metrics");
    }

    private static string[] Lines(string text) => text.Split('\n');

    private static double Value(string text, string series)
    {
        var line = Lines(text).SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no series {series} in:\n{text}");
        return double.Parse(line![(series.Length + 1)..], CultureInfo.InvariantCulture);
    }

    /// <summary>The server's log messages of the GPU metrics.</summary>
}
