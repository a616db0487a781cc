using InferenceServer.Mesh.RateLimits;

namespace InferenceServer.Mesh;

/// <summary>
/// The in-pod rate-limit option (configuration section <c>Mesh:SelfRateLimit</c>): the server watches its own
/// Service's EndpointSlices, the pods and the VirtualService's weights, and sets its own per-model limits to its share
/// of global budgets, as <c>meshctl ratelimit sync</c> would (README "Replica-aware rate limits"). Off by default; needs
/// the Role of k8s/components/self-ratelimit.
/// </summary>
public sealed class SelfRateLimitOptions
{
    public const string Section = "Mesh:SelfRateLimit";

    public bool Enabled { get; set; }

    /// <summary>Global budgets, <c>MODEL=REQUESTS_PER_SECOND</c> each (<c>--self-rate-limit-budget simple=100</c>).</summary>
    public List<string> Budgets { get; set; } = [];

    /// <summary>This pod's subset (the downward API's <c>metadata.labels['version']</c>).</summary>
    public string? Subset { get; set; }

    /// <summary>The namespace; default: the pod's service-account namespace file.</summary>
    public string? Namespace { get; set; }

    public string Service { get; set; } = "inference-server";
    public string PodSelector { get; set; } = "app=inference-server";
    public string VirtualService { get; set; } = "inference-server";
    public string Host { get; set; } = "inference-server.inference.svc.cluster.local";
    public string Stable { get; set; } = "v1";
    public string Canary { get; set; } = "v2";

    /// <summary>The pod label whose value names a subset (the shipped DestinationRule's); empty: read the DestinationRule
    /// (the Role then needs destinationrules get).</summary>
    public string? SubsetLabel { get; set; } = "version";

    public string DestinationRule { get; set; } = "inference-server";
    public double BurstFactor { get; set; } = 1;

    /// <summary>A kubeconfig file instead of the pod's in-cluster service account (tests, out-of-cluster runs).</summary>
    public string? Kubeconfig { get; set; }

    public double DebounceSeconds { get; set; } = 0.5;

    /// <summary>Recompute this often even without a change.</summary>
    public double ResyncSeconds { get; set; } = 60;

    internal const string ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

    /// <summary>The parsed budgets; throws <see cref="ArgumentException"/> naming the first bad value when enabled.</summary>
    public IReadOnlyList<ModelBudget> Validate()
    {
        if (!Enabled)
        {
            return [];
        }
        IReadOnlyList<ModelBudget> budgets;
        try
        {
            budgets = ModelBudget.ParseAll(Budgets);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"{Section}:Budgets: {e.Message}", e);
        }
        if (budgets.Count == 0)
        {
            throw new ArgumentException($"{Section} is enabled without a budget: give --self-rate-limit-budget MODEL=REQUESTS_PER_SECOND");
        }
        if (string.IsNullOrWhiteSpace(Subset))
        {
            throw new ArgumentException($"{Section}:Subset is not set: give --self-rate-limit-subset (in a pod, the downward API's metadata.labels['version'])");
        }
        if (Subset != Stable && Subset != Canary)
        {
            throw new ArgumentException($"{Section}:Subset '{Subset}' is neither the stable subset '{Stable}' nor the canary '{Canary}'");
        }
        if (!double.IsFinite(BurstFactor) || BurstFactor <= 0 || !double.IsFinite(DebounceSeconds) || DebounceSeconds < 0 || !double.IsFinite(ResyncSeconds) || ResyncSeconds <= 0)
        {
            throw new ArgumentException($"{Section}: BurstFactor and ResyncSeconds must be positive and DebounceSeconds not negative ({BurstFactor}, {ResyncSeconds}, {DebounceSeconds})");
        }
        return budgets;
    }

    internal RateLimitTarget Target(string ns) => new()
    {
        Namespace = ns,
        Service = Service,
        PodSelector = PodSelector,
        VirtualService = VirtualService,
        DestinationRule = DestinationRule,
        Host = Host,
        Stable = Stable,
        Canary = Canary,
        SubsetLabel = string.IsNullOrWhiteSpace(SubsetLabel) ? null : SubsetLabel,
    };
}
