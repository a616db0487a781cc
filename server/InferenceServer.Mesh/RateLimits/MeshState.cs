using System.Net;
using System.Text.Json.Nodes;
using InferenceServer.Mesh.Kubernetes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>A ready endpoint of the Service: the pod, its address and the subset its labels put it in.</summary>
public sealed record ReadyPod(string Name, string Address, string Subset);

/// <summary>What the share computation needs from the cluster: each subset's weight and labels, and the ready pods.</summary>
public sealed record MeshState(
    IReadOnlyDictionary<string, int> Weights,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> SubsetLabels,
    IReadOnlyList<ReadyPod> Pods)
{
    /// <summary>Ready pods of <paramref name="subset"/>.</summary>
    public int ReadyIn(string subset) => Pods.Count(p => p.Subset == subset);

    /// <summary>
    /// Reads the VirtualService's split, the DestinationRule's subsets (or <see cref="RateLimitTarget.SubsetLabel"/>),
    /// the Service's EndpointSlices and the pods. A ready endpoint is one whose <c>conditions.ready</c> is not false (the
    /// API's reading of an unset condition) and whose <c>targetRef</c> is a pod matching a subset; an address listed in
    /// several slices counts once.
    /// </summary>
    public static async Task<MeshState> ReadAsync(IKubernetes client, RateLimitTarget target, CancellationToken cancellationToken)
    {
        var virtualService = await client.CustomObjects.GetNamespacedCustomObjectAsync<JsonObject>(
            IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.VirtualServices, target.VirtualService, cancellationToken: cancellationToken);
        var (stable, canary) = new VirtualServiceSplit(target.Host, target.Stable, target.Canary).Read(virtualService);
        var weights = new Dictionary<string, int>(StringComparer.Ordinal) { [target.Stable] = stable, [target.Canary] = canary };
        var subsetLabels = await SubsetLabelsAsync(client, target, cancellationToken);
        var slices = await client.DiscoveryV1.ListNamespacedEndpointSliceAsync(target.Namespace, labelSelector: target.EndpointSliceSelector, cancellationToken: cancellationToken);
        var pods = await client.CoreV1.ListNamespacedPodAsync(target.Namespace, labelSelector: target.PodSelector, cancellationToken: cancellationToken);
        return new MeshState(weights, subsetLabels, Join(slices.Items, pods.Items, subsetLabels));
    }

    /// <summary>The ready endpoints of <paramref name="slices"/> that are pods of a subset, in address order.</summary>
    public static IReadOnlyList<ReadyPod> Join(
        IEnumerable<V1EndpointSlice> slices, IEnumerable<V1Pod> pods, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> subsetLabels)
    {
        var podsByName = pods.Where(p => p.Metadata?.Name is not null).GroupBy(p => p.Metadata.Name).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var ready = new Dictionary<string, ReadyPod>(StringComparer.Ordinal);
        foreach (var endpoint in slices.SelectMany(s => s.Endpoints ?? []))
        {
            if (endpoint.Conditions?.Ready == false || endpoint.TargetRef is not { Kind: "Pod", Name: { } podName } || endpoint.Addresses is not { Count: > 0 })
            {
                continue;
            }
            if (!podsByName.TryGetValue(podName, out var pod))
            {
                continue; // not one of the selected pods (or the pod list is a moment behind the slice)
            }
            var labels = pod.Metadata.Labels ?? new Dictionary<string, string>();
            var subset = subsetLabels.FirstOrDefault(s => s.Value.All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value)).Key;
            if (subset is null)
            {
                continue;
            }
            var address = endpoint.Addresses[0];
            ready.TryAdd(address, new ReadyPod(podName, address, subset));
        }
        return ready.Values.OrderBy(p => p.Subset, StringComparer.Ordinal).ThenBy(p => p.Name, StringComparer.Ordinal).ToList();
    }

    private static async Task<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> SubsetLabelsAsync(
        IKubernetes client, RateLimitTarget target, CancellationToken cancellationToken)
    {
        string[] names = [target.Stable, target.Canary];
        if (target.SubsetLabel is { } label)
        {
            return names.ToDictionary(n => n, n => (IReadOnlyDictionary<string, string>)new Dictionary<string, string> { [label] = n }, StringComparer.Ordinal);
        }
        JsonObject rule;
        try
        {
            rule = await client.CustomObjects.GetNamespacedCustomObjectAsync<JsonObject>(
                IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.DestinationRules, target.DestinationRule, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new InvalidOperationException(
                $"DestinationRule {target.Namespace}/{target.DestinationRule} not found: it defines the subsets {target.Stable} and {target.Canary} (or give the subset label, e.g. version)");
        }
        var result = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        foreach (var subset in (rule["spec"]?["subsets"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if ((string?)subset["name"] is { } name && names.Contains(name) && subset["labels"] is JsonObject labels)
            {
                result[name] = labels.ToDictionary(l => l.Key, l => (string?)l.Value ?? "", StringComparer.Ordinal);
            }
        }
        var missing = names.Where(n => !result.ContainsKey(n)).ToList();
        return missing.Count == 0 ? result
            : throw new InvalidOperationException($"DestinationRule {target.Namespace}/{target.DestinationRule} has no subset {string.Join(" or ", missing)} with labels");
    }
}
