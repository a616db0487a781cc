using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;
using Xunit;
using static InferenceServer.Tests.Deployment.Manifests;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// The traffic manifests (istio/virtualservice.yaml, destinationrule.yaml, gateway.yaml and the examples and variants)
/// against each other, the rendered k8s overlays, the contract (k8s/base/contract.env) and the server's status contract.
/// </summary>
public sealed class TrafficManifestTests
{
    private const string Host = "inference-server.inference.svc.cluster.local";

    private static IEnumerable<Manifest> OfKind(string kind) => Istio.Where(m => m.Kind == kind);

    private static Manifest MainVirtualService =>
        Istio.Single(m => m.Kind == "VirtualService" && m.Name == "inference-server" && m.Source == Path.Combine("istio", "virtualservice.yaml"));

    private static IEnumerable<(Manifest Vs, JsonObject Route, int Index)> HttpRoutes() =>
        OfKind("VirtualService").SelectMany(vs => vs.Spec["http"]!.AsArray().OfType<JsonObject>().Select((r, i) => (vs, r, i)));

    private static string At(Manifest vs, JsonObject route, int index) => $"{vs} http[{index}] ({RouteSimulator.Name(route)})";

    private static bool ToInferenceServer(JsonObject route) => RouteSimulator.Destinations(route).Any(d => d.Host == Host);

    private static bool IsStreaming(JsonObject route) => (string?)route["timeout"] == "0s";

    private static Dictionary<string, string> H(params string[] pairs) =>
        Enumerable.Range(0, pairs.Length / 2).ToDictionary(i => pairs[2 * i], i => pairs[2 * i + 1]);

    private static readonly Dictionary<string, string> Canary = H(C("MESH_CANARY_HEADER"), C("MESH_CANARY_HEADER_VALUE"));

    // ---- cross-references -------------------------------------------------------------------------------------------

    [Fact]
    public void Every_destination_resolves_to_a_service_or_service_entry_port_in_every_overlay()
    {
        var problems = new List<string>();
        var entries = OfKind("ServiceEntry").ToList();
        foreach (var overlay in Overlays)
        {
            var services = Render(overlay).Where(m => m.Kind == "Service").ToList();
            foreach (var (vs, route, index) in HttpRoutes())
            {
                foreach (var (host, _, port, _) in RouteSimulator.Destinations(route))
                {
                    var service = services.FirstOrDefault(s => $"{s.Name}.{s.Namespace}.svc.cluster.local" == host);
                    var entry = entries.FirstOrDefault(e => e.Spec["hosts"]!.AsArray().Any(h => (string?)h == host));
                    var ports = (service?.Spec ?? entry?.Spec)?["ports"]?.AsArray().Select(p => RouteSimulator.L(p!["port"] ?? p["number"])).ToList();
                    if (ports is null)
                    {
                        problems.Add($"{At(vs, route, index)}: destination host {host} is neither a Service in k8s/overlays/{overlay} nor a ServiceEntry host (use the FQDN)");
                    }
                    else if (port is null || !ports.Contains(port))
                    {
                        problems.Add($"{At(vs, route, index)}: destination port {port?.ToString() ?? "(none)"} of {host} is not one of its ports {string.Join(",", ports)} in {overlay}");
                    }
                }
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_destination_subset_exists_in_every_destination_rule_for_its_host()
    {
        var problems = new List<string>();
        foreach (var (vs, route, index) in HttpRoutes())
        {
            foreach (var (host, subset, _, _) in RouteSimulator.Destinations(route).Where(d => d.Subset is not null))
            {
                var rules = OfKind("DestinationRule").Where(dr => (string)dr.Spec["host"]! == host).ToList();
                if (rules.Count == 0)
                {
                    problems.Add($"{At(vs, route, index)}: subset {subset} of {host}, but no DestinationRule has host {host}");
                }
                foreach (var rule in rules.Where(dr => dr.Spec["subsets"]?.AsArray().Any(s => (string?)s!["name"] == subset) != true))
                {
                    problems.Add($"{At(vs, route, index)}: subset {subset} is missing from {rule} spec.subsets");
                }
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Every_subset_selects_the_pods_of_a_deployment_in_every_overlay()
    {
        var problems = new List<string>();
        foreach (var overlay in Overlays)
        {
            var rendered = Render(overlay);
            var service = rendered.Single(m => m.Kind == "Service" && m.Name == "inference-server");
            var selector = service.Spec["selector"]!.AsObject().ToDictionary(kv => kv.Key, kv => (string?)kv.Value);
            var deployments = rendered.Where(m => m.Kind == "Deployment" && m.Namespace == "inference").ToList();
            foreach (var rule in OfKind("DestinationRule").Where(dr => (string)dr.Spec["host"]! == Host))
            {
                foreach (var subset in rule.Spec["subsets"]!.AsArray().OfType<JsonObject>())
                {
                    var wanted = selector.Concat(subset["labels"]!.AsObject().Select(kv => KeyValuePair.Create(kv.Key, (string?)kv.Value))).ToList();
                    var selected = deployments.Where(d =>
                    {
                        var labels = d.Spec["template"]?["metadata"]?["labels"]?.AsObject();
                        return labels is not null && wanted.All(w => (string?)labels[w.Key] == w.Value);
                    }).ToList();
                    if (selected.Count != 1)
                    {
                        problems.Add($"{rule} subset {subset["name"]}: labels {subset["labels"]!.ToJsonString()} (with the Service selector) select " +
                            $"{selected.Count} Deployments' pods in k8s/overlays/{overlay}, expected exactly one");
                    }
                }
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Gateway_hosts_and_virtual_service_hosts_match()
    {
        var problems = new List<string>();
        var gateways = OfKind("Gateway").ToList();
        foreach (var vs in OfKind("VirtualService"))
        {
            var bound = vs.Spec["gateways"]?.AsArray().Select(g => (string)g!).Where(g => g != "mesh").ToList() ?? [];
            var hosts = vs.Spec["hosts"]!.AsArray().Select(h => (string)h!).ToList();
            foreach (var name in bound)
            {
                var gateway = gateways.FirstOrDefault(g => $"{g.Namespace}/{g.Name}" == name || (g.Name == name && g.Namespace == vs.Namespace));
                if (gateway is null)
                {
                    problems.Add($"{vs}: spec.gateways names {name}, which no Gateway under istio/ is");
                    continue;
                }
                var served = gateway.Spec["servers"]!.AsArray().SelectMany(s => s!["hosts"]!.AsArray().Select(h => (string)h!)).ToHashSet();
                if (!hosts.Any(served.Contains))
                {
                    problems.Add($"{vs}: none of spec.hosts [{string.Join(", ", hosts)}] is served by {gateway} [{string.Join(", ", served)}]");
                }
            }
        }
        foreach (var gateway in gateways)
        {
            foreach (var host in gateway.Spec["servers"]!.AsArray().SelectMany(s => s!["hosts"]!.AsArray().Select(h => (string)h!)).Distinct())
            {
                if (!OfKind("VirtualService").Any(vs => vs.Spec["hosts"]!.AsArray().Any(h => (string?)h == host) &&
                    vs.Spec["gateways"]?.AsArray().Any(g => (string?)g == $"{gateway.Namespace}/{gateway.Name}" || (string?)g == gateway.Name) == true))
                {
                    problems.Add($"{gateway}: host {host} has no VirtualService bound to this gateway");
                }
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void The_gateway_serves_tls_with_a_credential_and_redirects_plain_http()
    {
        var gateway = OfKind("Gateway").Single(g => g.Name == "inference-gateway");
        Assert.Equal("ingressgateway", (string?)gateway.Spec["selector"]!["istio"]);
        var servers = gateway.Spec["servers"]!.AsArray().OfType<JsonObject>().ToList();
        var https = servers.SingleOrDefault(s => (string?)s["port"]!["protocol"] == "HTTPS");
        Assert.True(https is not null && !string.IsNullOrEmpty((string?)https["tls"]?["credentialName"]), $"{gateway}: needs an HTTPS server with tls.credentialName (gRPC negotiates HTTP/2 by ALPN there)");
        var http = servers.SingleOrDefault(s => (string?)s["port"]!["protocol"] == "HTTP");
        Assert.True(http is null || (bool?)http["tls"]?["httpsRedirect"] == true, $"{gateway}: the HTTP server must redirect to HTTPS");
    }

    [Fact]
    public void Each_apply_set_has_one_destination_rule_per_host_and_variants_replace_by_name()
    {
        // kubectl apply -f istio/ (not recursive), then optionally one folder or file: no two DestinationRules for one host.
        var top = Istio.Where(m => Path.GetDirectoryName(m.Source) == "istio").ToList();
        foreach (var folder in Istio.Select(m => Path.GetDirectoryName(m.Source)!).Distinct())
        {
            var set = top.Concat(Istio.Where(m => Path.GetDirectoryName(m.Source) == folder && folder != "istio"))
                .GroupBy(m => (m.Kind, m.Namespace, m.Name)).Select(g => g.Last()).ToList();
            var duplicates = set.Where(m => m.Kind == "DestinationRule").GroupBy(m => (string)m.Spec["host"]!).Where(g => g.Count() > 1).ToList();
            Assert.True(duplicates.Count == 0, $"istio/ + {folder}: several DestinationRules for one host: " +
                string.Join("; ", duplicates.Select(g => string.Join(", ", g))));
        }
        var variant = OfKind("DestinationRule").Single(m => m.Source.Contains("variants", StringComparison.Ordinal));
        Assert.Equal("inference-server", variant.Name);
        Assert.Equal(C("MESH_SESSION_HEADER"), (string?)variant.Spec["trafficPolicy"]!["loadBalancer"]!["consistentHash"]!["httpHeaderName"]);
    }

    // ---- contract values ------------------------------------------------------------------------------------------

    [Fact]
    public void Retries_equal_the_contract_on_every_route_to_the_inference_server()
    {
        var problems = new List<string>();
        foreach (var (vs, route, index) in HttpRoutes().Where(r => ToInferenceServer(r.Route)))
        {
            var isAdmin = RouteSimulator.Destinations(route).All(d => d.Port == CInt("INFERENCE_METRICS_PORT"));
            if (isAdmin)
            {
                continue;
            }
            var retries = route["retries"] as JsonObject;
            if ((string?)retries?["retryOn"] != C("MESH_RETRY_ON"))
            {
                problems.Add($"{At(vs, route, index)}: retries.retryOn is '{retries?["retryOn"]}', contract MESH_RETRY_ON is '{C("MESH_RETRY_ON")}'");
            }
            if (RouteSimulator.L(retries?["attempts"]) != CInt("MESH_RETRY_ATTEMPTS"))
            {
                problems.Add($"{At(vs, route, index)}: retries.attempts is {retries?["attempts"]}, contract MESH_RETRY_ATTEMPTS is {C("MESH_RETRY_ATTEMPTS")}");
            }
            if (IsStreaming(route))
            {
                if (retries?["perTryTimeout"] is not null)
                {
                    problems.Add($"{At(vs, route, index)}: a streaming route (timeout 0s) must not set retries.perTryTimeout, it would cut the stream");
                }
            }
            else
            {
                if ((string?)retries?["perTryTimeout"] != C("MESH_PER_TRY_TIMEOUT"))
                {
                    problems.Add($"{At(vs, route, index)}: retries.perTryTimeout is '{retries?["perTryTimeout"]}', contract MESH_PER_TRY_TIMEOUT is '{C("MESH_PER_TRY_TIMEOUT")}'");
                }
                if ((string?)route["timeout"] != C("MESH_ROUTE_TIMEOUT"))
                {
                    problems.Add($"{At(vs, route, index)}: timeout is '{route["timeout"]}', contract MESH_ROUTE_TIMEOUT is '{C("MESH_ROUTE_TIMEOUT")}'");
                }
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Unary_timeouts_leave_room_for_every_try()
    {
        var perTry = IstioSchema.ParseDuration(C("MESH_PER_TRY_TIMEOUT"))!.Value;
        var route = IstioSchema.ParseDuration(C("MESH_ROUTE_TIMEOUT"))!.Value;
        // The route timeout bounds all tries together: it must at least allow the first try and one retry.
        Assert.True(route >= 2 * perTry, $"k8s/base/contract.env: MESH_ROUTE_TIMEOUT {route} < 2 x MESH_PER_TRY_TIMEOUT {perTry}");
        // A try must outlast the server's drain: a draining pod finishes accepted requests within INFERENCE_DRAIN_TIMEOUT.
        Assert.True(perTry.TotalSeconds >= CInt("INFERENCE_DRAIN_TIMEOUT"), "MESH_PER_TRY_TIMEOUT is shorter than INFERENCE_DRAIN_TIMEOUT");
    }

    [Fact]
    public void Retry_codes_are_exactly_the_ones_the_server_marks_retriable()
    {
        var retryOn = C("MESH_RETRY_ON").Split(',').ToHashSet();
        foreach (var never in (string[])["5xx", "gateway-error", "500", "504", "retriable-status-codes", "cancelled", "deadline-exceeded", "internal"])
        {
            Assert.False(retryOn.Contains(never), $"k8s/base/contract.env MESH_RETRY_ON contains '{never}', which the server's status contract marks not retriable");
        }
        // docs/status-codes.md's "The contract with the mesh" table: the retry column lists the retryOn tokens of each retriable
        // class ("yes ... `429`, `resource-exhausted`"); "no"/"never" rows name statuses that must not be retried.
        var readme = File.ReadAllLines(Path.Combine(Paths.RepositoryRoot, "docs", "status-codes.md"));
        var start = Array.FindIndex(readme, l => l.StartsWith("## The contract with the mesh", StringComparison.Ordinal));
        Assert.True(start >= 0, "docs/status-codes.md has no section 'The contract with the mesh'");
        var rows = readme.Skip(start).SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|')).Skip(2)
            .Select(l => l.Split('|').Select(c => c.Trim()).ToArray()).ToList();
        Assert.NotEmpty(rows);
        var fromReadme = new HashSet<string>();
        foreach (var row in rows)
        {
            var (rest, retry) = (row[2], row[5]);
            if (retry.StartsWith("yes", StringComparison.Ordinal))
            {
                fromReadme.UnionWith(Regex.Matches(retry, "`([^`]+)`").Select(m => m.Groups[1].Value));
            }
            else
            {
                foreach (Match code in Regex.Matches(rest, "[1-5][0-9][0-9]"))
                {
                    Assert.False(retryOn.Contains(code.Value), $"MESH_RETRY_ON retries {code.Value}, which docs/status-codes.md's status contract says not to retry ({row[1]})");
                }
            }
        }
        Assert.Equal(fromReadme.Order(), retryOn.Order());
    }

    [Fact]
    public void Outlier_detection_and_load_balancing_equal_the_contract()
    {
        var expected = new Dictionary<string, string>
        {
            ["consecutive5xxErrors"] = C("MESH_CONSECUTIVE_5XX"),
            ["consecutiveGatewayErrors"] = C("MESH_CONSECUTIVE_GATEWAY_ERRORS"),
            ["interval"] = C("MESH_OUTLIER_INTERVAL"),
            ["baseEjectionTime"] = C("MESH_BASE_EJECTION_TIME"),
            ["maxEjectionPercent"] = C("MESH_MAX_EJECTION_PERCENT"),
            ["minHealthPercent"] = C("MESH_MIN_HEALTH_PERCENT"),
        };
        var rules = OfKind("DestinationRule").Where(dr => (string)dr.Spec["host"]! == Host).ToList();
        Assert.NotEmpty(rules);
        foreach (var rule in rules)
        {
            var outlier = rule.Spec["trafficPolicy"]?["outlierDetection"] as JsonObject;
            foreach (var (field, value) in expected)
            {
                Assert.True(outlier?[field]?.ToString() == value,
                    $"{rule}: trafficPolicy.outlierDetection.{field} is '{outlier?[field]}', k8s/base/contract.env says '{value}'");
            }
            // The REST port speaks HTTP/1.1 only: a mesh-wide UPGRADE policy must not turn it into h2c.
            Assert.True((string?)rule.Spec["trafficPolicy"]!["connectionPool"]?["http"]?["h2UpgradePolicy"] == "DO_NOT_UPGRADE",
                $"{rule}: trafficPolicy.connectionPool.http.h2UpgradePolicy must be DO_NOT_UPGRADE (REST is HTTP/1.1)");
        }
        var main = rules.Single(r => r.Source == Path.Combine("istio", "destinationrule.yaml"));
        var lb = main.Spec["trafficPolicy"]!["loadBalancer"]!;
        Assert.Equal("LEAST_REQUEST", (string?)lb["simple"]);
        Assert.True(lb["warmup"]?["duration"] is not null && lb["warmupDurationSecs"] is null,
            $"{main}: trafficPolicy.loadBalancer must use warmup.duration, not the deprecated warmupDurationSecs");
    }

    [Fact]
    public void Header_names_equal_the_contract()
    {
        var allowed = new[] { "MESH_CANARY_HEADER", "MESH_MODEL_HEADER", "MESH_VERSION_HEADER" }.Select(C).ToHashSet();
        var used = new HashSet<string>();
        foreach (var (vs, route, index) in HttpRoutes().Where(r => ToInferenceServer(r.Route)))
        {
            foreach (var match in route["match"]?.AsArray().OfType<JsonObject>() ?? [])
            {
                foreach (var (name, condition) in match["headers"]?.AsObject() ?? [])
                {
                    used.Add(name);
                    Assert.True(allowed.Contains(name), $"{At(vs, route, index)}: matches header '{name}', not a contract header ({string.Join(", ", allowed)})");
                    if (name == C("MESH_CANARY_HEADER"))
                    {
                        Assert.True((string?)condition!["exact"] == C("MESH_CANARY_HEADER_VALUE"),
                            $"{At(vs, route, index)}: {name} must match exactly '{C("MESH_CANARY_HEADER_VALUE")}' (MESH_CANARY_HEADER_VALUE)");
                    }
                }
            }
        }
        Assert.Equal(allowed.Order(), used.Order());
    }

    // ---- weights and routing order --------------------------------------------------------------------------------

    [Fact]
    public void Weights_sum_to_100_and_the_shipped_canary_is_90_10()
    {
        foreach (var (vs, route, index) in HttpRoutes())
        {
            var destinations = RouteSimulator.Destinations(route);
            Assert.True(destinations.Sum(d => d.Weight) == 100, $"{At(vs, route, index)}: weights sum to {destinations.Sum(d => d.Weight)}, not 100");
            if (destinations.Count > 1 && destinations.All(d => d.Host == Host))
            {
                Assert.True(destinations.Single(d => d.Subset == "v1").Weight == 90 && destinations.Single(d => d.Subset == "v2").Weight == 10,
                    $"{At(vs, route, index)}: the shipped canary is v1 90 / v2 10");
            }
        }
    }

    [Fact]
    public void Every_weighted_route_is_preceded_by_a_canary_header_route_for_its_requests()
    {
        var vs = MainVirtualService;
        var routes = vs.Spec["http"]!.AsArray().OfType<JsonObject>().ToList();
        var weighted = routes.Where(r => RouteSimulator.Destinations(r).Count > 1).ToList();
        Assert.NotEmpty(weighted);
        foreach (var request in SampleRequests)
        {
            var plain = RouteSimulator.Route(vs, request);
            if (plain is null || !weighted.Contains(plain))
            {
                continue;
            }
            var opted = RouteSimulator.Route(vs, request with { Headers = Canary });
            Assert.True(opted is not null && routes.IndexOf(opted) < routes.IndexOf(plain) &&
                RouteSimulator.Destinations(opted).All(d => d.Subset == "v2") && IsStreaming(opted) == IsStreaming(plain),
                $"{vs}: {request} goes to the weighted route {RouteSimulator.Name(plain)}, but with the canary header it goes to " +
                $"{RouteSimulator.Name(opted)}: expected an earlier all-v2 route with the same timeout class");
        }
    }

    private static readonly SimRequest[] SampleRequests =
    [
        new("/v2/models/simple/infer"),
        new("/v2/models/simple/versions/1/infer"),
        new("/v2/models/simple"),
        new("/v2/health/ready"),
        new("/v1/models/simple:predict"),
        new("/v1/completions"),
        new("/v1/chat/completions"),
        new("/v1/models"),
        new("/v2/models/bigram_lm/generate"),
        new("/v2/models/bigram_lm/generate_stream"),
        new("/v2/models/bigram_lm/versions/1/generate_stream"),
        new("/inference.GRPCInferenceService/ModelInfer"),
        new("/inference.GRPCInferenceService/ModelStreamInfer"),
        new("/grpc.health.v1.Health/Check"),
        new("/v2/models/simple/infer", "mesh", 8000),
        new("/inference.GRPCInferenceService/ModelInfer", "mesh", 8001),
    ];

    public static TheoryData<string, string, int, string, string, string> Routing => new()
    {
        // path, gateway, port, headers ("k=v;k=v"), expected route, expected split ("v1:90,v2:10")
        { "/v2/models/simple/infer", "inference/inference-gateway", 443, "", "rest-split", "v1:90,v2:10" },
        { "/v2/models/simple/infer", "mesh", 8000, "", "rest-split", "v1:90,v2:10" },
        { "/v2/models/simple/infer", "inference/inference-gateway", 443, "x-canary-user=true", "rest-canary", "v2:100" },
        { "/v2/models/simple/infer", "inference/inference-gateway", 443, "x-canary-user=yes", "rest-split", "v1:90,v2:10" },
        { "/v2/models/linear/versions/2/infer", "inference/inference-gateway", 443, "", "rest-model-linear-v2", "v2:100" },
        { "/v2/models/linear/versions/1/infer", "inference/inference-gateway", 443, "", "rest-split", "v1:90,v2:10" },
        { "/v2/models/linear/versions/20/infer", "inference/inference-gateway", 443, "", "rest-split", "v1:90,v2:10" },
        { "/inference.GRPCInferenceService/ModelInfer", "inference/inference-gateway", 443, "x-model-name=linear;x-model-version=2", "grpc-model-linear-v2", "v2:100" },
        { "/inference.GRPCInferenceService/ModelInfer", "inference/inference-gateway", 443, "x-model-name=linear;x-model-version=1", "grpc-split", "v1:90,v2:10" },
        { "/inference.GRPCInferenceService/ModelInfer", "inference/inference-gateway", 443, "x-canary-user=true", "grpc-canary", "v2:100" },
        { "/inference.GRPCInferenceService/ModelStreamInfer", "inference/inference-gateway", 443, "", "grpc-streaming-split", "v1:90,v2:10" },
        { "/inference.GRPCInferenceService/ModelStreamInfer", "inference/inference-gateway", 443, "x-canary-user=true", "grpc-streaming-canary", "v2:100" },
        { "/v1/chat/completions", "inference/inference-gateway", 443, "", "rest-streaming-split", "v1:90,v2:10" },
        { "/v1/completions", "mesh", 8000, "", "rest-streaming-split", "v1:90,v2:10" },
        { "/v1/chat/completions", "inference/inference-gateway", 443, "x-canary-user=true", "rest-streaming-canary", "v2:100" },
        { "/v2/models/bigram_lm/generate_stream", "inference/inference-gateway", 443, "", "rest-streaming-split", "v1:90,v2:10" },
        { "/v2/models/bigram_lm/generate", "inference/inference-gateway", 443, "", "rest-split", "v1:90,v2:10" },
        { "/metrics", "mesh", 8002, "", "metrics-admin-mesh-only", ":100" },
        { "/v2/admin/limits", "mesh", 8002, "", "metrics-admin-mesh-only", ":100" },
        { "/metrics", "inference/inference-gateway", 443, "", "rest-split", "v1:90,v2:10" },
    };

    [Theory]
    [MemberData(nameof(Routing))]
    public void Requests_take_the_expected_route(string path, string gateway, int port, string headers, string expectedRoute, string expectedSplit)
    {
        var request = new SimRequest(path, gateway, port,
            headers.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(h => h.Split('=')).ToDictionary(h => h[0], h => h[1]));
        var route = RouteSimulator.Route(MainVirtualService, request);
        Assert.True(RouteSimulator.Name(route) == expectedRoute, $"{MainVirtualService}: {request} takes route {RouteSimulator.Name(route)}, expected {expectedRoute}");
        var split = string.Join(",", RouteSimulator.Destinations(route!).Select(d => $"{d.Subset}:{d.Weight}"));
        Assert.True(split == expectedSplit, $"{MainVirtualService}: {request} goes to {split}, expected {expectedSplit}");
    }

    [Fact]
    public void Streaming_requests_have_no_short_timeout_and_no_per_try_timeout()
    {
        var vs = MainVirtualService;
        // Every OpenAI completion route the server maps (under each of its prefixes) may stream.
        string[] streaming =
        [
            .. InferenceServer.Http.OpenAi.OpenAiEndpoints.Prefixes.SelectMany(p => new[] { p + "/completions", p + "/chat/completions" }),
            "/v2/models/bigram_lm/generate_stream",
            "/v2/models/bigram_lm/versions/1/generate_stream", "/inference.GRPCInferenceService/ModelStreamInfer",
        ];
        foreach (var path in streaming)
        {
            foreach (var headers in new[] { new Dictionary<string, string>(), Canary,
                H(C("MESH_MODEL_HEADER"), "linear", C("MESH_VERSION_HEADER"), "2") })
            {
                var request = new SimRequest(path, Headers: headers);
                var route = RouteSimulator.Route(vs, request)!;
                var timeout = IstioSchema.ParseDuration((string?)route["timeout"] ?? "unset");
                Assert.True(timeout == TimeSpan.Zero || timeout >= TimeSpan.FromMinutes(10),
                    $"{vs}: {request} takes route {RouteSimulator.Name(route)} with timeout {route["timeout"]?.ToString() ?? "unset"}: a stream needs an explicit 0s (disabled) or a long timeout");
                Assert.True(route["retries"]?["perTryTimeout"] is null,
                    $"{vs}: {request} takes route {RouteSimulator.Name(route)} whose retries.perTryTimeout would cut the stream");
            }
        }
    }

    [Fact]
    public void The_metrics_port_is_never_a_destination_from_the_gateway()
    {
        var metrics = CInt("INFERENCE_METRICS_PORT");
        var problems = new List<string>();
        foreach (var (vs, route, index) in HttpRoutes())
        {
            if (!RouteSimulator.Destinations(route).Any(d => d.Port == metrics))
            {
                continue;
            }
            var matches = route["match"]?.AsArray().OfType<JsonObject>().ToList() ?? [];
            var meshOnly = matches.Count > 0 && matches.All(m =>
                m["gateways"]?.AsArray().Select(g => (string?)g).SequenceEqual(["mesh"]) == true && RouteSimulator.L(m["port"]) == metrics);
            if (!meshOnly)
            {
                problems.Add($"{At(vs, route, index)}: routes to port {metrics} (metrics/admin); only a route whose every match is gateways [mesh] and port {metrics} may");
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        foreach (var path in (string[])["/metrics", "/v2/admin/limits", "/v2/health/ready"])
        {
            var route = RouteSimulator.Route(MainVirtualService, new SimRequest(path));
            Assert.True(route is not null && RouteSimulator.Destinations(route).All(d => d.Port != metrics),
                $"{MainVirtualService}: {path} from the gateway reaches port {metrics}");
        }
    }

    [Fact]
    public void The_external_model_api_has_per_path_timeouts()
    {
        var vs = OfKind("VirtualService").Single(v => v.Source.Contains("examples", StringComparison.Ordinal) && v.Spec["hosts"]!.AsArray().Any(h => (string?)h == "api.openai.com"));
        var entry = OfKind("ServiceEntry").Single(e => e.Spec["hosts"]!.AsArray().Any(h => (string?)h == "api.openai.com"));
        Assert.Equal("MESH_EXTERNAL", (string?)entry.Spec["location"]);
        var chat = RouteSimulator.Route(vs, new SimRequest("/v1/chat/completions", "mesh", 80))!;
        var embeddings = RouteSimulator.Route(vs, new SimRequest("/v1/embeddings", "mesh", 80))!;
        Assert.True((string?)chat["timeout"] == "300s" && chat["retries"]?["perTryTimeout"] is null, $"{vs}: chat needs timeout 300s and no per-try timeout");
        Assert.True((string?)embeddings["timeout"] == "30s", $"{vs}: embeddings need timeout 30s");
        foreach (var route in new[] { chat, embeddings })
        {
            var retryOn = ((string?)route["retries"]?["retryOn"] ?? "").Split(',');
            Assert.True(RouteSimulator.L(route["retries"]?["attempts"]) > 0 && !retryOn.Intersect(["5xx", "500", "504", "gateway-error"]).Any(),
                $"{vs} route {RouteSimulator.Name(route)}: retries must be set and must not retry 500/504");
        }
        // TLS origination: the HTTP port the application calls is sent to 443 with TLS by the sidecar.
        var rule = OfKind("DestinationRule").Single(d => (string?)d.Spec["host"] == "api.openai.com");
        var origination = rule.Spec["trafficPolicy"]!["portLevelSettings"]!.AsArray().Single(p => RouteSimulator.L(p!["port"]!["number"]) == 80)!;
        Assert.Equal("SIMPLE", (string?)origination["tls"]!["mode"]);
    }
}
