namespace InferenceServer.Observability;

/// <summary>Metrics options (configuration section <c>Metrics</c>).</summary>
public sealed class MetricsOptions
{
    /// <summary>The NVML library the GPU metrics read: a name the dynamic loader searches for, or a path.</summary>
    public string NvmlLibrary { get; set; } = "libnvidia-ml.so.1";
}
