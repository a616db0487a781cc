namespace InferenceServer.Lifecycle;

/// <summary>
/// Graceful drain on SIGTERM / SIGINT (configuration section <c>Drain</c>). The sum of the two, plus any preStop hook,
/// must fit in the pod's <c>terminationGracePeriodSeconds</c> and in the sidecar's <c>terminationDrainDuration</c>.
/// </summary>
public sealed class DrainOptions
{
    /// <summary>
    /// Seconds the server keeps accepting and serving after the signal, with readiness failing and connections asked to
    /// close, so the mesh can take the endpoint out of load balancing (default 5).
    /// </summary>
    public double DelaySeconds { get; set; } = 5;

    /// <summary>Seconds the requests accepted before the listeners closed get to finish; what still runs then is cut (default 30).</summary>
    public double TimeoutSeconds { get; set; } = 30;

    /// <summary>How much longer than the drain timeout the host waits before it aborts connections itself.</summary>
    internal static readonly TimeSpan HostBackstop = TimeSpan.FromSeconds(5);

    internal TimeSpan Delay => TimeSpan.FromSeconds(DelaySeconds);

    internal TimeSpan Timeout => TimeSpan.FromSeconds(TimeoutSeconds);

    internal void Validate()
    {
        if (!(DelaySeconds >= 0) || !(TimeoutSeconds >= 0) || DelaySeconds > 3600 || TimeoutSeconds > 3600)
        {
            throw new ArgumentException($"drain delay and timeout must be between 0 and 3600 seconds (got {DelaySeconds} and {TimeoutSeconds})");
        }
    }
}
