using System.Globalization;

namespace InferenceServer.Mesh.Canary;

/// <summary>
/// The PromQL templates of the analysis, by name, with placeholders <c>{namespace}</c>, <c>{service}</c> (the
/// Kubernetes Service of the host), <c>{subset}</c> (the canary subset), <c>{deployment}</c> (the canary's Deployment;
/// its pods are <c>{deployment}-*</c>) and <c>{window}</c> (the analysis window, e.g. <c>60s</c>). Each query must
/// answer one number (a scalar or a one-series vector); an empty answer or NaN is "no data".
/// </summary>
public sealed class CanaryQueries
{
    /// <summary>Requests the canary's pods finished in the window (server metrics).</summary>
    public const string ServerRequests = "server-requests";

    /// <summary>The canary pods' share of failed requests: engine failures (INTERNAL), UNAVAILABLE, DEADLINE_EXCEEDED.
    /// Client errors (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION), RESOURCE_EXHAUSTED (429 load shedding, 413) and
    /// client cancellations are not the canary's fault and do not count as failures.</summary>
    public const string ServerErrorRate = "server-error-rate";

    /// <summary>95th percentile of the canary pods' request duration (successful requests), seconds.</summary>
    public const string ServerP95 = "server-p95-latency";

    /// <summary>95th percentile of the canary pods' time to first token (generative models), seconds.</summary>
    public const string ServerTtftP95 = "server-ttft-p95";

    /// <summary>Requests the canary subset's sidecars saw in the window.</summary>
    public const string IstioRequests = "istio-requests";

    /// <summary>The canary subset's share of failures as the sidecars saw them: HTTP 5xx (never 429), and gRPC calls
    /// answered 200 with a server-side status (UNKNOWN 2, DEADLINE_EXCEEDED 4, INTERNAL 13, UNAVAILABLE 14).</summary>
    public const string IstioErrorRate = "istio-error-rate";

    // The canary's pods, by the labels the kubernetes-pods scrape job adds (the metric label `version` is the MODEL
    // version, not the pod's subset).
    private const string Pods = "namespace=\"{namespace}\",pod=~\"{deployment}-.*\"";

    // The canary subset as the server-side sidecars report it.
    private const string Istio = "reporter=\"destination\",destination_service_namespace=\"{namespace}\",destination_service_name=\"{service}\",destination_version=\"{subset}\"";

    private const string Window = "[{window}]";

    /// <summary>The shipped templates.</summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [ServerRequests] = "sum(increase(inference_requests_total{" + Pods + "}" + Window + "))",
        [ServerErrorRate] =
            "(sum(rate(inference_requests_total{" + Pods + ",outcome=\"failure\",status=~\"INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED\"}" + Window + ")) or vector(0))"
            + " / sum(rate(inference_requests_total{" + Pods + "}" + Window + "))",
        [ServerP95] = "histogram_quantile(0.95, sum by (le) (rate(inference_request_duration_seconds_bucket{" + Pods + "}" + Window + ")))",
        [ServerTtftP95] = "histogram_quantile(0.95, sum by (le) (rate(inference_time_to_first_token_seconds_bucket{" + Pods + "}" + Window + ")))",
        [IstioRequests] = "sum(increase(istio_requests_total{" + Istio + "}" + Window + "))",
        [IstioErrorRate] =
            "(sum(rate(istio_requests_total{" + Istio + ",response_code=~\"5..\"}" + Window + ")"
            + " or rate(istio_requests_total{" + Istio + ",response_code=\"200\",grpc_response_status=~\"2|4|13|14\"}" + Window + ")) or vector(0))"
            + " / sum(rate(istio_requests_total{" + Istio + "}" + Window + "))",
    };

    private readonly Dictionary<string, string> _templates = new(Defaults, StringComparer.Ordinal);

    /// <summary>Replaces the template <paramref name="name"/> (one of the constants); throws
    /// <see cref="ArgumentException"/> naming the known names otherwise.</summary>
    public void Set(string name, string template)
    {
        if (!_templates.ContainsKey(name))
        {
            throw new ArgumentException($"unknown query '{name}' (known: {string.Join(", ", Defaults.Keys)})", nameof(name));
        }
        _templates[name] = template;
    }

    /// <summary>The query <paramref name="name"/> with its placeholders filled in.</summary>
    public string Render(string name, CanaryAnalysisRequest request) =>
        _templates[name]
            .Replace("{namespace}", request.Target.Namespace, StringComparison.Ordinal)
            .Replace("{service}", request.Target.Service, StringComparison.Ordinal)
            .Replace("{subset}", request.Target.Canary, StringComparison.Ordinal)
            .Replace("{deployment}", request.Plan.CanaryDeployment, StringComparison.Ordinal)
            .Replace("{window}", Duration(request.Window), StringComparison.Ordinal);

    /// <summary>A PromQL duration in whole seconds (at least 1s).</summary>
    public static string Duration(TimeSpan window) =>
        Math.Max(1, (long)Math.Ceiling(window.TotalSeconds)).ToString(CultureInfo.InvariantCulture) + "s";
}
