using System.Text.Json.Nodes;
using InferenceServer.Admission;
using InferenceServer.Tests.Infrastructure;
using Xunit;
using static InferenceServer.Tests.Deployment.Manifests;

namespace InferenceServer.Tests.Deployment;

/// <summary>istio/security.yaml: JWT to tenant header, mTLS, and who may reach which port.</summary>
public sealed class SecurityManifestTests
{
    private const string Gateway = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
    private const string Prometheus = "cluster.local/ns/monitoring/sa/prometheus";
    private const string Meshctl = "cluster.local/ns/inference/sa/meshctl";

    private static IEnumerable<Manifest> OfKind(string kind) => Istio.Where(m => m.Kind == kind);

    private static Manifest RequestAuthentication => OfKind("RequestAuthentication").Single();

    private static IEnumerable<string> Strings(JsonNode? node) => node?.AsArray().Select(n => (string)n!) ?? [];

    private static bool SelectsGateway(Manifest m) =>
        m.Namespace == "istio-system" && (string?)m.Spec["selector"]?["matchLabels"]?["istio"] == "ingressgateway";

    private static bool SelectsServer(Manifest m) =>
        m.Namespace == "inference" && (string?)m.Spec["selector"]?["matchLabels"]?["app"] == "inference-server";

    [Fact]
    public void The_jwt_tenant_claim_is_copied_to_the_header_the_server_partitions_by()
    {
        var ra = RequestAuthentication;
        Assert.True(SelectsGateway(ra), $"{ra}: must select the ingress gateway (istio: ingressgateway in istio-system)");
        var rules = ra.Spec["jwtRules"]!.AsArray().OfType<JsonObject>().ToList();
        Assert.NotEmpty(rules);
        foreach (var rule in rules)
        {
            Assert.True(((string?)rule["issuer"])?.Length > 0 && ((string?)rule["jwksUri"])?.StartsWith("https://", StringComparison.Ordinal) == true,
                $"{ra}: jwtRules need an issuer and an https jwksUri");
            var headers = rule["outputClaimToHeaders"]!.AsArray().Select(h => (string)h!["header"]!).ToList();
            Assert.True(headers.Contains(C("INFERENCE_Admission__TenantHeader")),
                $"{ra}: jwtRules[].outputClaimToHeaders[].header [{string.Join(", ", headers)}] must include the contract's tenant header " +
                $"INFERENCE_Admission__TenantHeader={C("INFERENCE_Admission__TenantHeader")}");
        }
        // The contract's value is the server's own default, so a server without the ConfigMap partitions by the same header.
        Assert.Equal(new AdmissionOptions().TenantHeader, C("INFERENCE_Admission__TenantHeader"));
    }

    [Fact]
    public void No_virtual_service_touches_the_tenant_header()
    {
        // A VirtualService header operation runs in the router, after the JWT filter: removing the header there would also
        // delete the verified claim, setting it would let routing forge a tenant. The JWT filter alone owns it.
        var tenant = C("INFERENCE_Admission__TenantHeader");
        foreach (var vs in OfKind("VirtualService"))
        {
            var text = vs.Spec.ToJsonString();
            foreach (var operations in vs.Spec["http"]!.AsArray().SelectMany(r => new[] { r!["headers"]?["request"] }.Concat(
                r["route"]!.AsArray().Select(d => d!["headers"]?["request"]))).OfType<JsonObject>())
            {
                var touched = Strings(operations["remove"]).Concat(operations["set"]?.AsObject().Select(kv => kv.Key) ?? [])
                    .Concat(operations["add"]?.AsObject().Select(kv => kv.Key) ?? []);
                Assert.DoesNotContain(tenant, touched, StringComparer.OrdinalIgnoreCase);
            }
            Assert.True(!text.Contains($"\"{tenant}\"", StringComparison.OrdinalIgnoreCase), $"{vs}: mentions {tenant}; only the RequestAuthentication may produce it");
        }
    }

    [Fact]
    public void The_gateway_rejects_requests_without_a_token_and_model_management()
    {
        var deny = OfKind("AuthorizationPolicy").Where(p => SelectsGateway(p) && (string?)p.Spec["action"] == "DENY").ToList();
        Assert.NotEmpty(deny);
        var rules = deny.SelectMany(p => p.Spec["rules"]!.AsArray().OfType<JsonObject>()).ToList();
        var hosts = OfKind("Gateway").Single(g => g.Name == "inference-gateway").Spec["servers"]!.AsArray()
            .SelectMany(s => Strings(s!["hosts"])).Distinct().ToList();
        // Without a token: notRequestPrincipals ["*"] for the inference host.
        Assert.Contains(rules, r => Strings(r["from"]?[0]?["source"]?["notRequestPrincipals"]).SequenceEqual(["*"]) &&
            hosts.All(h => Strings(r["to"]?[0]?["operation"]?["hosts"]).Contains(h)));
        var blocked = rules.SelectMany(r => Strings(r["to"]?[0]?["operation"]?["paths"])).ToHashSet();
        foreach (var path in RepositoryPaths)
        {
            Assert.True(blocked.Contains(path), $"{string.Join(", ", deny)}: must deny {path} at the gateway");
        }
    }

    private static readonly string[] RepositoryPaths =
    [
        "/v2/repository/*",
        "/inference.GRPCInferenceService/RepositoryIndex",
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
    ];

    [Fact]
    public void The_pods_deny_model_management_from_the_gateway_identity()
    {
        var deny = OfKind("AuthorizationPolicy").Single(p => SelectsServer(p) && (string?)p.Spec["action"] == "DENY");
        var rule = deny.Spec["rules"]!.AsArray().Single()!;
        Assert.Equal([Gateway], Strings(rule["from"]![0]!["source"]!["principals"]));
        Assert.Equal(RepositoryPaths.Order(), Strings(rule["to"]![0]!["operation"]!["paths"]).Order());
    }

    [Fact]
    public async Task The_denied_repository_paths_are_the_ones_the_server_serves()
    {
        // The patterns must cover real endpoints: REST /v2/repository/... (Istio's "/v2/repository/*" is a prefix match)
        // and the gRPC Repository* methods.
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        using var index = await server.Http.PostAsync("/v2/repository/index", new StringContent("{}"));
        Assert.NotEqual(System.Net.HttpStatusCode.NotFound, index.StatusCode);
        Assert.StartsWith("/v2/repository/", index.RequestMessage!.RequestUri!.AbsolutePath, StringComparison.Ordinal);
        var reply = await server.Grpc.RepositoryIndexAsync(new InferenceServer.Protocol.RepositoryIndexRequest());
        Assert.NotEmpty(reply.Models);
        var methods = InferenceServer.Protocol.GRPCInferenceService.Descriptor.Methods.Select(m => $"/{InferenceServer.Protocol.GRPCInferenceService.Descriptor.FullName}/{m.Name}")
            .Where(m => m.Contains("/Repository", StringComparison.Ordinal)).Order().ToList();
        Assert.Equal(RepositoryPaths.Where(p => p.StartsWith("/inference.", StringComparison.Ordinal)).Order(), methods);
    }

    [Fact]
    public void Serving_ports_admit_the_gateway_and_named_clients_and_the_metrics_port_admits_prometheus_and_meshctl()
    {
        var allow = OfKind("AuthorizationPolicy").Single(p => SelectsServer(p) && (string?)p.Spec["action"] == "ALLOW");
        var serving = new[] { C("INFERENCE_HTTP_PORT"), C("INFERENCE_GRPC_PORT") };
        var metrics = C("INFERENCE_METRICS_PORT");
        var grants = new List<(string Principal, string Port)>();
        foreach (var rule in allow.Spec["rules"]!.AsArray().OfType<JsonObject>())
        {
            var from = rule["from"]!.AsArray().Select(f => f!["source"]!.AsObject()).ToList();
            Assert.True(from.All(s => s.Count == 1 && s["principals"] is JsonArray),
                $"{allow}: every rule must name mTLS principals only (namespaces or IP blocks are broader than the contract)");
            var ports = rule["to"]!.AsArray().SelectMany(t => Strings(t!["operation"]!["ports"])).ToList();
            Assert.True(ports.Count > 0, $"{allow}: a rule without ports would open every port");
            grants.AddRange(from.SelectMany(s => Strings(s["principals"])).SelectMany(p => ports.Select(port => (p, port))));
        }
        foreach (var port in serving)
        {
            Assert.Contains((Gateway, port), grants);
        }
        Assert.Contains(grants, g => g.Principal.StartsWith("cluster.local/ns/apps/", StringComparison.Ordinal) && serving.Contains(g.Port));
        var metricsPrincipals = grants.Where(g => g.Port == metrics).Select(g => g.Principal).Order().ToList();
        Assert.Equal(new[] { Meshctl, Prometheus }.Order(), metricsPrincipals);
        var stray = grants.Where(g => !serving.Contains(g.Port) && g.Port != metrics).ToList();
        Assert.True(stray.Count == 0, $"{allow}: grants ports outside the contract: {string.Join(", ", stray)}");
        Assert.DoesNotContain((Gateway, metrics), grants);
        Assert.True(grants.Where(g => g.Principal is Prometheus or Meshctl).All(g => g.Port == metrics),
            $"{allow}: Prometheus and meshctl get the metrics/admin port only");
    }

    [Fact]
    public void The_server_policies_select_the_inference_pods_in_every_overlay()
    {
        foreach (var overlay in Overlays)
        {
            var deployments = Render(overlay).Where(m => m.Kind == "Deployment" && m.Name.StartsWith("inference-server-", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(deployments);
            foreach (var policy in Istio.Where(m => m.Kind is "AuthorizationPolicy" or "Telemetry" && SelectsServer(m)))
            {
                var selector = policy.Spec["selector"]!["matchLabels"]!.AsObject();
                foreach (var deployment in deployments)
                {
                    var labels = deployment.Spec["template"]!["metadata"]!["labels"]!.AsObject();
                    Assert.True(selector.All(kv => (string?)labels[kv.Key] == (string?)kv.Value),
                        $"{policy}: spec.selector {selector.ToJsonString()} does not select {deployment} in k8s/overlays/{overlay}");
                }
            }
        }
    }

    [Fact]
    public void Probes_are_http_gets_so_the_sidecar_injector_can_rewrite_them()
    {
        // With STRICT mTLS the kubelet (no mesh certificate) cannot reach the pod's ports, and the ALLOW policy does not
        // list it. Probes still work because the injector rewrites httpGet probes to the istio-agent (port 15020), which
        // calls the server from inside the pod. That only happens for httpGet (and gRPC) probes, so check the kind.
        foreach (var overlay in Overlays)
        {
            foreach (var deployment in Render(overlay).Where(m => m.Kind == "Deployment" && m.Name.StartsWith("inference-server-", StringComparison.Ordinal)))
            {
                var container = deployment.Spec["template"]!["spec"]!["containers"]!.AsArray().Single(c => (string?)c!["name"] == "server")!;
                foreach (var probe in (string[])["startupProbe", "readinessProbe", "livenessProbe"])
                {
                    Assert.True(container[probe]?["httpGet"] is JsonObject, $"{deployment} ({overlay}): containers[server].{probe} must be an httpGet probe");
                }
            }
        }
    }

    [Fact]
    public void Mtls_is_strict_with_a_permissive_variant_that_replaces_it()
    {
        var strict = OfKind("PeerAuthentication").Single(p => Path.GetDirectoryName(p.Source) == "istio");
        Assert.True(strict.Namespace == "inference" && (string?)strict.Spec["mtls"]!["mode"] == "STRICT" && strict.Spec["selector"] is null,
            $"{strict}: namespace-wide STRICT mTLS for inference (principals in the AuthorizationPolicy need it)");
        var permissive = OfKind("PeerAuthentication").Single(p => p.Source.Contains("variants", StringComparison.Ordinal));
        Assert.True(permissive.Name == strict.Name && permissive.Namespace == strict.Namespace && (string?)permissive.Spec["mtls"]!["mode"] == "PERMISSIVE",
            $"{permissive}: the migration variant must be PERMISSIVE with the same name and namespace as {strict}, so it replaces it");
    }

    [Fact]
    public void Telemetry_logs_errors_slow_and_model_requests_and_samples_traces()
    {
        var telemetry = OfKind("Telemetry").Single();
        var expression = (string)telemetry.Spec["accessLogging"]![0]!["filter"]!["expression"]!;
        foreach (var part in (string[])["response.code >= 400", "request.duration > duration(", "request.url_path.startsWith('/v2/models/')"])
        {
            Assert.True(expression.Contains(part, StringComparison.Ordinal), $"{telemetry}: accessLogging[0].filter.expression lacks `{part}`");
        }
        var sampling = (double)telemetry.Spec["tracing"]![0]!["randomSamplingPercentage"]!.GetValue<double>();
        Assert.InRange(sampling, 0.01, 100);
    }
}
