namespace InferenceServer.Mesh.Canary;

/// <summary>Which split a rollout moves: the VirtualService, the host its split routes send to, and the two subsets.</summary>
public sealed record CanaryTarget(string Namespace, string VirtualService, string Host, string Stable, string Canary)
{
    /// <summary>The Kubernetes Service behind the host (the first label of <c>name.namespace.svc.cluster.local</c>).</summary>
    public string Service => Host.Split('.')[0];
}

/// <summary>What a canary must stay under, per analysis window; checks on a source with fewer than
/// <see cref="MinRequests"/> requests in the window are not judged (inconclusive).</summary>
public sealed record CanaryThresholds(double MaxErrorRate, TimeSpan MaxP95Latency, TimeSpan? MaxTtftP95, long MinRequests);

/// <summary>
/// A rollout's plan: the canary's weight at each step (percent, strictly increasing), how long each step lasts at least
/// (<see cref="Pause"/>), how often the analysis runs and over which window (<see cref="Interval"/>), how long past the
/// pause a step may stay inconclusive before it fails (<see cref="MaxWait"/>, null: wait for ever), the thresholds, the
/// metric sources analysed, and the name of the canary's Deployment (its pods are <c>DEPLOYMENT-*</c>).
/// </summary>
public sealed record CanaryPlan(
    IReadOnlyList<int> Steps,
    TimeSpan Pause,
    TimeSpan Interval,
    TimeSpan? MaxWait,
    CanaryThresholds Thresholds,
    IReadOnlyList<string> Sources,
    string CanaryDeployment)
{
    /// <summary>Metric source: the server's own metrics (<c>inference_*</c>) of the canary's pods.</summary>
    public const string ServerSource = "server";

    /// <summary>Metric source: the sidecars' <c>istio_requests_total</c> for the canary subset.</summary>
    public const string IstioSource = "istio";

    /// <summary>A message naming what is wrong with the plan, or null when it is valid.</summary>
    public string? Validate()
    {
        if (Steps.Count == 0)
        {
            return "--steps needs at least one weight";
        }
        for (var i = 0; i < Steps.Count; i++)
        {
            if (Steps[i] is < 1 or > 100)
            {
                return $"--steps: weight {Steps[i]} is outside 1..100 (a weight is the canary's percentage)";
            }
            if (i > 0 && Steps[i] <= Steps[i - 1])
            {
                return $"--steps must increase: {Steps[i]} comes after {Steps[i - 1]}";
            }
        }
        if (Interval <= TimeSpan.Zero)
        {
            return "--interval must be positive";
        }
        if (Pause < TimeSpan.Zero || MaxWait < TimeSpan.Zero)
        {
            return "--pause and --max-wait cannot be negative";
        }
        if (Thresholds.MaxErrorRate is < 0 or > 1 || double.IsNaN(Thresholds.MaxErrorRate))
        {
            return $"--max-error-rate {Thresholds.MaxErrorRate} is not a fraction in 0..1 (0.05 is 5 %)";
        }
        if (Thresholds.MaxP95Latency <= TimeSpan.Zero || Thresholds.MaxTtftP95 <= TimeSpan.Zero)
        {
            return "--max-p95-latency and --max-ttft-p95 must be positive";
        }
        if (Thresholds.MinRequests < 0)
        {
            return "--min-requests cannot be negative";
        }
        if (Sources.Count == 0 || Sources.FirstOrDefault(s => s is not (ServerSource or IstioSource)) is { } unknown)
        {
            return $"--sources: unknown source '{Sources.FirstOrDefault(s => s is not (ServerSource or IstioSource))}' (known: {ServerSource}, {IstioSource})";
        }
        return null;
    }
}
