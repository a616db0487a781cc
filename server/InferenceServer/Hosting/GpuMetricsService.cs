using InferenceServer.Observability;

namespace InferenceServer.Hosting;

/// <summary>Opens NVML for the GPU metrics when the server starts (or logs why they are off) and shuts it down when it stops.</summary>
internal sealed class GpuMetricsService(ServerMetrics metrics, MetricsOptions options, ILogger<GpuMetrics> logger) : IHostedService, IDisposable
{
    private GpuMetrics? _gpus;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _gpus = GpuMetrics.Start(metrics, options.NvmlLibrary, logger);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _gpus?.Dispose();
}
