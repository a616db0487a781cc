using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using InferenceServer.Mesh.Kubernetes;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>
/// The per-subset local-rate-limit EnvoyFilter (<c>inference-local-ratelimit-SUBSET</c>): the shipped
/// istio/envoyfilter-local-ratelimit.yaml's filter (same position, statuses and headers) on the REST and gRPC
/// listeners of the subset's pods only, with the subset's per-pod share as its token bucket. The sidecar has one
/// bucket per listener for all models, so the bucket is the sum of the models' shares. Written with server-side apply
/// under the field manager <c>meshctl</c>.
/// </summary>
public static class LocalRateLimitFilter
{

    public static string NameOf(string subset) => "inference-local-ratelimit-" + subset;

    /// <summary>The EnvoyFilter for <paramref name="subset"/> (pods with <paramref name="podLabels"/> and the subset's labels).</summary>
    public static JsonObject Build(
        string ns, string subset, IReadOnlyDictionary<string, string> podLabels, IReadOnlyDictionary<string, string> subsetLabels,
        PodShare bucket, IReadOnlyList<int> ports, string description)
    {
        var selector = new JsonObject();
        foreach (var (key, value) in podLabels.Concat(subsetLabels))
        {
            selector[key] = value;
        }
        return new JsonObject
        {
            ["apiVersion"] = $"{IstioApi.Group}/{IstioApi.EnvoyFilterVersion}",
            ["kind"] = "EnvoyFilter",
            ["metadata"] = new JsonObject
            {
                ["name"] = NameOf(subset),
                ["namespace"] = ns,
                ["labels"] = new JsonObject { ["app"] = "inference-server", ["app.kubernetes.io/managed-by"] = IstioApi.FieldManager },
                ["annotations"] = new JsonObject { ["inference-server/rate-limit-shares"] = description },
            },
            ["spec"] = new JsonObject
            {
                ["workloadSelector"] = new JsonObject { ["labels"] = selector },
                ["configPatches"] = new JsonArray(ports.Select(port => (JsonNode)Patch(port, subset, bucket)).ToArray()),
            },
        };
    }

    /// <summary>Server-side applies <paramref name="filter"/> (force: meshctl owns these objects), retrying a 409 conflict.</summary>
    public static async Task ApplyAsync(IKubernetes client, JsonObject filter, CancellationToken cancellationToken, int attempts = 3)
    {
        var ns = (string)filter["metadata"]!["namespace"]!;
        var name = (string)filter["metadata"]!["name"]!;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await client.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch(filter.ToJsonString(), V1Patch.PatchType.ApplyPatch),
                    IstioApi.Group, IstioApi.EnvoyFilterVersion, ns, IstioApi.EnvoyFilters, name, fieldManager: IstioApi.FieldManager, force: true, cancellationToken: cancellationToken);
                return;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < attempts)
            {
                // Another manager changed it in between: apply again over the new version.
            }
        }
    }

    private static JsonObject Patch(int port, string subset, PodShare bucket) => new()
    {
        ["applyTo"] = "HTTP_FILTER",
        ["match"] = new JsonObject
        {
            ["context"] = "SIDECAR_INBOUND",
            ["listener"] = new JsonObject
            {
                ["portNumber"] = port,
                ["filterChain"] = new JsonObject
                {
                    ["filter"] = new JsonObject
                    {
                        ["name"] = "envoy.filters.network.http_connection_manager",
                        ["subFilter"] = new JsonObject { ["name"] = "envoy.filters.http.router" },
                    },
                },
            },
        },
        ["patch"] = new JsonObject
        {
            ["operation"] = "INSERT_BEFORE",
            ["value"] = new JsonObject
            {
                ["name"] = "envoy.filters.http.local_ratelimit",
                ["typed_config"] = new JsonObject
                {
                    ["@type"] = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                    ["stat_prefix"] = "inference_local_ratelimit_" + subset,
                    ["token_bucket"] = new JsonObject
                    {
                        ["max_tokens"] = bucket.Burst,
                        ["tokens_per_fill"] = bucket.RequestsPerSecond,
                        ["fill_interval"] = "1s",
                    },
                    ["filter_enabled"] = Percent("inference_local_ratelimit_enabled"),
                    ["filter_enforced"] = Percent("inference_local_ratelimit_enforced"),
                    ["status"] = new JsonObject { ["code"] = "TooManyRequests" },
                    ["rate_limited_as_resource_exhausted"] = true,
                    ["enable_x_ratelimit_headers"] = "DRAFT_VERSION_03",
                    ["response_headers_to_add"] = new JsonArray(Header("retry-after", "1"), Header("grpc-retry-pushback-ms", "1000")),
                },
            },
        },
    };

    private static JsonObject Percent(string runtimeKey) => new()
    {
        ["runtime_key"] = runtimeKey,
        ["default_value"] = new JsonObject { ["numerator"] = 100, ["denominator"] = "HUNDRED" },
    };

    private static JsonObject Header(string key, string value) => new()
    {
        ["append_action"] = "OVERWRITE_IF_EXISTS_OR_ADD",
        ["header"] = new JsonObject { ["key"] = key, ["value"] = value },
    };
}
