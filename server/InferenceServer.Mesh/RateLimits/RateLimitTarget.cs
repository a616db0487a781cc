namespace InferenceServer.Mesh.RateLimits;

/// <summary>
/// Where the rate-limit sync looks: the Service whose EndpointSlices list the ready pods, the pods' common label
/// selector, the VirtualService that splits <see cref="Host"/> between the <see cref="Stable"/> and <see cref="Canary"/>
/// subsets, and the DestinationRule that defines those subsets by pod labels. The defaults are the shipped manifests'
/// names. With <see cref="SubsetLabel"/> set, a subset is the pods whose label of that name equals the subset's name,
/// and the DestinationRule is not read.
/// </summary>
public sealed record RateLimitTarget
{
    public string Namespace { get; init; } = "inference";
    public string Service { get; init; } = "inference-server";
    public string PodSelector { get; init; } = "app=inference-server";
    public string VirtualService { get; init; } = "inference-server";
    public string DestinationRule { get; init; } = "inference-server";
    public string Host { get; init; } = "inference-server.inference.svc.cluster.local";
    public string Stable { get; init; } = "v1";
    public string Canary { get; init; } = "v2";
    public string? SubsetLabel { get; init; }

    /// <summary>The EndpointSlices' label naming their Service.</summary>
    public string EndpointSliceSelector => "kubernetes.io/service-name=" + Service;

    /// <summary>Labels of <see cref="PodSelector"/> (equality terms <c>a=b,c=d</c>).</summary>
    public IReadOnlyDictionary<string, string> PodLabels =>
        PodSelector.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(term => term.Split('=', 2))
            .Where(parts => parts.Length == 2)
            .ToDictionary(parts => parts[0].Trim(), parts => parts[1].TrimStart('=').Trim(), StringComparer.Ordinal);
}
