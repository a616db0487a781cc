using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Hosting;
using Xunit;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// The EnvoyFilters under istio/: every patch value checked field by field against the Envoy v3 message its applyTo
/// stands for (the CRD schema accepts anything there), current filter names and matching typed configs, the workloads
/// and contexts they select, the ports they match, and their numbers against k8s/base/contract.env.
/// </summary>
public sealed class EnvoyFilterTests
{
    /// <summary>The Envoy message an EnvoyFilter patch value of each applyTo is.</summary>
    internal static readonly IReadOnlyDictionary<string, string> MessageOfApplyTo = new Dictionary<string, string>
    {
        ["LISTENER"] = "envoy.config.listener.v3.Listener",
        ["FILTER_CHAIN"] = "envoy.config.listener.v3.FilterChain",
        ["NETWORK_FILTER"] = "envoy.config.listener.v3.Filter",
        ["HTTP_FILTER"] = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        ["ROUTE_CONFIGURATION"] = "envoy.config.route.v3.RouteConfiguration",
        ["VIRTUAL_HOST"] = "envoy.config.route.v3.VirtualHost",
        ["HTTP_ROUTE"] = "envoy.config.route.v3.Route",
        ["CLUSTER"] = "envoy.config.cluster.v3.Cluster",
        ["EXTENSION_CONFIG"] = "envoy.config.core.v3.TypedExtensionConfig",
        ["BOOTSTRAP"] = "envoy.config.bootstrap.v3.Bootstrap",
        ["LISTENER_FILTER"] = "envoy.config.listener.v3.ListenerFilter",
    };

    /// <summary>Current HTTP filter names and the typed config each takes.</summary>
    internal static readonly IReadOnlyDictionary<string, string> HttpFilterTypes = new Dictionary<string, string>
    {
        ["envoy.filters.http.local_ratelimit"] = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        ["envoy.filters.http.ratelimit"] = "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        ["envoy.filters.http.lua"] = "envoy.extensions.filters.http.lua.v3.Lua",
        ["envoy.filters.http.router"] = "envoy.extensions.filters.http.router.v3.Router",
        ["envoy.filters.http.buffer"] = "envoy.extensions.filters.http.buffer.v3.Buffer",
    };

    /// <summary>Names of older examples that current Envoy no longer knows.</summary>
    private static readonly string[] RemovedNames =
    [
        "envoy.rate_limit", "envoy.router", "envoy.http_connection_manager", "envoy.lua", "envoy.buffer",
        "envoy.local_rate_limit", "envoy.filters.http.rate_limit",
    ];

    private static readonly string[] ServingPortKeys = ["INFERENCE_HTTP_PORT", "INFERENCE_GRPC_PORT"];

    /// <summary>Every EnvoyFilter a user applies (istio/, and the rendered overlays when k8s/overlays exists).</summary>
    internal static IReadOnlyList<Manifest> EnvoyFilters =>
        (Directory.Exists(Path.Combine(Manifests.K8s, "overlays")) ? Manifests.All : Manifests.Istio)
        .Where(m => m.Kind == "EnvoyFilter").ToList();

    internal static IEnumerable<(Manifest Filter, int Index, JsonObject Patch)> Patches() =>
        from filter in EnvoyFilters
        let patches = filter.Spec["configPatches"] as JsonArray ?? []
        from i in Enumerable.Range(0, patches.Count)
        select (filter, i, (JsonObject)patches[i]!);

    private static string Where(Manifest filter, int index, string field) => $"{filter}: spec.configPatches[{index}].{field}";

    [Fact]
    public void The_shipped_EnvoyFilters_are_there()
    {
        var names = EnvoyFilters.Select(f => f.Name).ToHashSet();
        string[] expected =
        [
            "inference-local-ratelimit", "inference-global-ratelimit", "inference-retry-buffer-gateway",
            "inference-retry-buffer-outbound", "inference-local-ratelimit-gateway",
        ];
        Assert.True(expected.All(names.Contains), $"istio/: EnvoyFilters [{string.Join(", ", names)}] miss some of [{string.Join(", ", expected)}]");
    }

    [Fact]
    public void Every_patch_value_is_a_valid_Envoy_message_for_its_applyTo()
    {
        var map = EnvoyFieldMap.Instance;
        var errors = new List<string>();
        foreach (var (filter, i, patch) in Patches())
        {
            var applyTo = (string?)patch["applyTo"];
            var operation = (string?)patch["patch"]?["operation"];
            if (applyTo is null || !MessageOfApplyTo.TryGetValue(applyTo, out var message))
            {
                errors.Add($"{Where(filter, i, "applyTo")}: '{applyTo}' is not one this test knows");
                continue;
            }
            Assert.True(map.HasMessage(message), $"the field map has no {message}");
            var value = patch["patch"]?["value"];
            if (value is null)
            {
                if (operation != "REMOVE")
                {
                    errors.Add($"{Where(filter, i, "patch.value")}: missing (operation {operation})");
                }
                continue;
            }
            // MERGE patches are partial messages: the same field check applies.
            errors.AddRange(map.Validate(value, message, Where(filter, i, "patch.value")));
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void Http_filters_use_current_names_and_a_typed_config_of_their_own_type()
    {
        var errors = new List<string>();
        foreach (var (filter, i, patch) in Patches())
        {
            foreach (var name in MatchedNames(patch["match"]))
            {
                if (RemovedNames.Contains(name))
                {
                    errors.Add($"{Where(filter, i, "match")}: '{name}' is a removed filter name");
                }
            }
            var value = patch["patch"]?["value"] as JsonObject;
            if ((string?)patch["applyTo"] == "HTTP_FILTER" && value is not null && (string?)patch["patch"]?["operation"] != "MERGE")
            {
                var name = (string?)value["name"];
                if (name is null || !HttpFilterTypes.TryGetValue(name, out var expected))
                {
                    errors.Add($"{Where(filter, i, "patch.value.name")}: '{name}' is not a current filter name this test knows");
                    continue;
                }
                var type = (string?)value["typed_config"]?["@type"];
                if (type != EnvoyFieldMap.TypePrefix + expected)
                {
                    errors.Add($"{Where(filter, i, "patch.value.typed_config.@type")}: '{type}' for {name}; expected {EnvoyFieldMap.TypePrefix}{expected}");
                }
            }
            // Per-filter configs are keyed by the filter name and must be that filter's type.
            if (value?["typed_per_filter_config"] is JsonObject perFilter)
            {
                foreach (var (key, config) in perFilter)
                {
                    var type = (string?)config?["@type"];
                    if (!HttpFilterTypes.TryGetValue(key, out var expected) || type != EnvoyFieldMap.TypePrefix + expected)
                    {
                        errors.Add($"{Where(filter, i, $"patch.value.typed_per_filter_config.{key}")}: '{type}' does not belong to filter '{key}'");
                    }
                }
            }
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void No_filter_is_inserted_twice_into_the_same_chain()
    {
        // Every file under istio/ must apply alone or together with the others (the gateway-only layout applies
        // istio/ and istio/gateway-only/): one filter name per workload, context and listener port.
        var inserted = Patches()
            .Where(p => (string?)p.Patch["applyTo"] == "HTTP_FILTER" && (string?)p.Patch["patch"]?["operation"] is not ("MERGE" or "REMOVE"))
            .GroupBy(p => string.Join("|",
                p.Filter.Namespace,
                p.Filter.Spec["workloadSelector"]?.ToJsonString() ?? "(all)",
                (string?)p.Patch["match"]?["context"],
                p.Patch["match"]?["listener"]?["portNumber"]?.ToJsonString() ?? "(any port)",
                (string?)p.Patch["patch"]?["value"]?["name"]))
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.First().Patch["patch"]?["value"]?["name"]} is inserted by {string.Join(" and ", g.Select(p => Where(p.Filter, p.Index, "patch")))}")
            .ToList();
        Assert.True(inserted.Count == 0, string.Join(Environment.NewLine, inserted));
    }

    [Fact]
    public void No_deprecated_forms_where_a_current_one_exists()
    {
        var errors = new List<string>();
        foreach (var (filter, i, patch) in Patches())
        {
            var value = patch["patch"]?["value"] as JsonObject;
            if ((string?)patch["applyTo"] == "CLUSTER" && value is not null)
            {
                foreach (var old in new[] { "http2_protocol_options", "http2ProtocolOptions", "http_protocol_options", "common_http_protocol_options" })
                {
                    if (value.ContainsKey(old))
                    {
                        errors.Add($"{Where(filter, i, $"patch.value.{old}")}: deprecated on Cluster; use typed_extension_protocol_options with envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
                    }
                }
                if (value["typed_extension_protocol_options"] is JsonObject options)
                {
                    foreach (var (key, option) in options)
                    {
                        // The map key names the extension; it must be the type of its value.
                        if ((string?)option?["@type"] != EnvoyFieldMap.TypePrefix + key)
                        {
                            errors.Add($"{Where(filter, i, $"patch.value.typed_extension_protocol_options.{key}")}: key and @type '{option?["@type"]}' disagree");
                        }
                    }
                }
            }
            if ((string?)value?["name"] == "envoy.filters.http.lua" && value?["typed_config"] is JsonObject lua
                && (lua.ContainsKey("inline_code") || lua.ContainsKey("inlineCode")))
            {
                errors.Add($"{Where(filter, i, "patch.value.typed_config.inline_code")}: deprecated; use default_source_code.inline_string");
            }
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void Each_EnvoyFilter_selects_the_right_workloads_and_contexts()
    {
        var errors = new List<string>();
        foreach (var filter in EnvoyFilters)
        {
            var labels = filter.Spec["workloadSelector"]?["labels"] as JsonObject;
            var contexts = (filter.Spec["configPatches"] as JsonArray ?? []).Select(p => (string?)p?["match"]?["context"]).ToList();
            var gatewayOnly = filter.Source.Replace('\\', '/').StartsWith("istio/gateway-only/", StringComparison.Ordinal);
            if (filter.Namespace is null)
            {
                errors.Add($"{filter}: metadata.namespace must be explicit");
            }
            else if (filter.Namespace == "inference")
            {
                // In the inference namespace: only the inference pods' sidecars, inbound.
                if ((string?)labels?["app"] != "inference-server" || labels!.Count != 1)
                {
                    errors.Add($"{filter}: spec.workloadSelector.labels must be exactly app: inference-server");
                }
                errors.AddRange(contexts.Where(c => c != "SIDECAR_INBOUND").Select(c => $"{filter}: context {c ?? "(none)"}; expected SIDECAR_INBOUND"));
            }
            else if (filter.Namespace == "istio-system" && labels is not null)
            {
                // The ingress gateway.
                if ((string?)labels["istio"] != "ingressgateway" || labels.Count != 1)
                {
                    errors.Add($"{filter}: spec.workloadSelector.labels must be exactly istio: ingressgateway");
                }
                errors.AddRange(contexts.Where(c => c != "GATEWAY").Select(c => $"{filter}: context {c ?? "(none)"}; expected GATEWAY"));
            }
            else if (filter.Namespace == "istio-system")
            {
                // Mesh-wide (root namespace, no selector): only outbound patches scoped to the inference host.
                foreach (var (patch, index) in (filter.Spec["configPatches"] as JsonArray ?? []).Select((p, k) => (p, k)))
                {
                    if ((string?)patch?["match"]?["context"] != "SIDECAR_OUTBOUND"
                        || (string?)patch?["match"]?["routeConfiguration"]?["vhost"]?["domainName"] != InferenceHost)
                    {
                        errors.Add($"{Where(filter, index, "match")}: a mesh-wide patch must be SIDECAR_OUTBOUND on vhost domainName {InferenceHost}");
                    }
                }
            }
            else
            {
                errors.Add($"{filter}: namespace {filter.Namespace}; EnvoyFilters live in inference or istio-system");
            }
            if (gatewayOnly && (filter.Namespace != "istio-system" || (string?)labels?["istio"] != "ingressgateway"
                                || contexts.Any(c => c != "GATEWAY")))
            {
                errors.Add($"{filter}: the gateway-only layout patches only the ingress gateway (istio-system, istio: ingressgateway, GATEWAY)");
            }
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    private const string InferenceHost = "inference-server.inference.svc.cluster.local";

    private const string ExternalHost = "inference.example.com";

    [Fact]
    public void Listener_matches_use_the_serving_ports_and_never_the_metrics_port()
    {
        var serving = ServingPortKeys.Select(Manifests.CInt).ToHashSet();
        var metrics = Manifests.CInt("INFERENCE_METRICS_PORT");
        var errors = new List<string>();
        foreach (var (filter, i, patch) in Patches())
        {
            foreach (var field in new[] { "listener.portNumber", "listener.filterChain.destinationPort", "routeConfiguration.portNumber" })
            {
                var node = field.Split('.').Aggregate(patch["match"], (n, part) => n?[part]);
                if (node is null || (string?)patch["match"]?["context"] == "GATEWAY")
                {
                    continue;
                }
                var port = node.GetValue<long>();
                if (port == metrics || !serving.Contains((int)port))
                {
                    errors.Add($"{Where(filter, i, $"match.{field}")}: {port}; only the serving ports {string.Join(", ", serving)} may be patched (never {metrics})");
                }
            }
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));

        // The sidecar local limit covers both serving ports (a port left out would be unlimited).
        var inbound = Patches()
            .Where(p => (string?)p.Patch["match"]?["context"] == "SIDECAR_INBOUND"
                        && (string?)p.Patch["patch"]?["value"]?["name"] == "envoy.filters.http.local_ratelimit")
            .Select(p => (int)(p.Patch["match"]?["listener"]?["portNumber"]?.GetValue<long>() ?? -1))
            .ToHashSet();
        Assert.True(inbound.SetEquals(serving),
            $"istio/envoyfilter-local-ratelimit.yaml: local_ratelimit is on inbound ports [{string.Join(", ", inbound)}]; expected exactly [{string.Join(", ", serving)}]");
    }

    /// <summary>Every local_ratelimit config that has a bucket, with where it is.</summary>
    private static IEnumerable<(string Where, JsonObject Config, string Context)> LocalRateLimits()
    {
        foreach (var (filter, i, patch) in Patches())
        {
            var context = (string?)patch["match"]?["context"] ?? "";
            var value = patch["patch"]?["value"] as JsonObject;
            if ((string?)value?["name"] == "envoy.filters.http.local_ratelimit" && value?["typed_config"] is JsonObject config
                && config.ContainsKey("token_bucket"))
            {
                yield return (Where(filter, i, "patch.value.typed_config"), config, context);
            }
            if (value?["typed_per_filter_config"]?["envoy.filters.http.local_ratelimit"] is JsonObject perHost)
            {
                yield return (Where(filter, i, "patch.value.typed_per_filter_config.envoy.filters.http.local_ratelimit"), perHost, context);
            }
        }
    }

    [Fact]
    public void Local_rate_limits_answer_like_the_server_with_the_contract_numbers()
    {
        var rps = Manifests.CInt("MESH_LOCAL_RATE_LIMIT_RPS");
        var burst = Manifests.CInt("MESH_LOCAL_RATE_LIMIT_BURST");
        var limits = LocalRateLimits().ToList();
        Assert.Contains(limits, l => l.Context == "SIDECAR_INBOUND");
        Assert.Contains(limits, l => l.Context == "GATEWAY");
        var errors = new List<string>();
        foreach (var (where, config, _) in limits)
        {
            var bucket = config["token_bucket"]!;
            var maxTokens = bucket["max_tokens"]?.GetValue<long>();
            var perFill = bucket["tokens_per_fill"]?.GetValue<long>() ?? 1;
            var interval = Seconds((string?)bucket["fill_interval"]);
            if (maxTokens != burst)
            {
                errors.Add($"{where}.token_bucket.max_tokens: {maxTokens}; contract MESH_LOCAL_RATE_LIMIT_BURST={burst}");
            }
            if (Math.Abs(perFill / interval - rps) > 1e-9)
            {
                errors.Add($"{where}.token_bucket: {perFill} per {interval}s = {perFill / interval}/s; contract MESH_LOCAL_RATE_LIMIT_RPS={rps}");
            }
            foreach (var field in new[] { "filter_enabled", "filter_enforced" })
            {
                var fraction = config[field]?["default_value"];
                if (fraction?["numerator"]?.GetValue<long>() != 100 || (string?)fraction?["denominator"] != "HUNDRED")
                {
                    errors.Add($"{where}.{field}: must be 100/HUNDRED (every request checked and enforced)");
                }
            }
            var status = (string?)config["status"]?["code"];
            if (status is not (null or "TooManyRequests"))
            {
                errors.Add($"{where}.status.code: {status}; the server's overload status is 429 TooManyRequests");
            }
            if (config["rate_limited_as_resource_exhausted"]?.GetValue<bool>() != true)
            {
                errors.Add($"{where}.rate_limited_as_resource_exhausted: must be true (gRPC RESOURCE_EXHAUSTED, as the server answers)");
            }
            if ((string?)config["enable_x_ratelimit_headers"] != "DRAFT_VERSION_03")
            {
                errors.Add($"{where}.enable_x_ratelimit_headers: must be DRAFT_VERSION_03 (x-ratelimit-* like the server)");
            }
            CheckRetryAfter(where, config, interval, errors);
        }
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    /// <summary>A 429's Retry-After: whole seconds, at least one refill away.</summary>
    internal static void CheckRetryAfter(string where, JsonObject config, double refillSeconds, List<string> errors)
    {
        var headers = (config["response_headers_to_add"] as JsonArray ?? [])
            .Select(h => h?["header"]).Where(h => h is not null).ToList();
        var retryAfter = headers.FirstOrDefault(h => string.Equals((string?)h!["key"], "retry-after", StringComparison.OrdinalIgnoreCase));
        if (retryAfter is null || !int.TryParse((string?)retryAfter["value"], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || seconds < 1 || seconds < refillSeconds)
        {
            errors.Add($"{where}.response_headers_to_add: needs retry-after in whole seconds >= {refillSeconds} (the server's 429 carries Retry-After)");
        }
    }

    internal static double Seconds(string? duration)
    {
        Assert.True(duration is not null && duration.EndsWith('s'), $"'{duration}' is not a Duration");
        return double.Parse(duration![..^1], CultureInfo.InvariantCulture);
    }

    [Fact]
    public void The_gateway_only_filter_passes_everything_outside_the_inference_host()
    {
        // The filter-level config of the gateway's local limiter has no bucket and no filter_enabled: Envoy then limits
        // nothing, so only the inference host's per-host config (checked above) limits.
        var gateway = Patches().Where(p => (string?)p.Patch["match"]?["context"] == "GATEWAY"
                                           && (string?)p.Patch["patch"]?["value"]?["name"] == "envoy.filters.http.local_ratelimit").ToList();
        Assert.NotEmpty(gateway);
        foreach (var (filter, i, patch) in gateway)
        {
            var config = (JsonObject)patch["patch"]!["value"]!["typed_config"]!;
            Assert.False(config.ContainsKey("token_bucket") || config.ContainsKey("filter_enabled"),
                $"{Where(filter, i, "patch.value.typed_config")}: a gateway-wide bucket would limit every host of a shared gateway");
            var perHost = Patches().Where(p => p.Filter == filter && (string?)p.Patch["applyTo"] == "VIRTUAL_HOST").ToList();
            Assert.True(perHost.Count == 1 && (string?)perHost[0].Patch["match"]?["routeConfiguration"]?["vhost"]?["domainName"] == ExternalHost,
                $"{filter}: needs one VIRTUAL_HOST patch on domainName {ExternalHost} with the bucket");
        }
    }

    [Fact]
    public void Retry_buffer_equals_the_contract_on_every_proxy_that_retries()
    {
        var bytes = Manifests.CInt("MESH_RETRY_BUFFER_BYTES");
        // Above Envoy's 1 MiB default (else the filter is pointless) and within the server's own max request size.
        Assert.InRange(bytes, 1024 * 1024 + 1, new ServerOptions().MaxRequestBytes);
        var patches = Patches().Where(p => p.Patch["patch"]?["value"]?["per_request_buffer_limit_bytes"] is not null).ToList();
        foreach (var (filter, i, patch) in patches)
        {
            var value = patch["patch"]!["value"]!["per_request_buffer_limit_bytes"]!.GetValue<long>();
            Assert.True(value == bytes, $"{Where(filter, i, "patch.value.per_request_buffer_limit_bytes")}: {value}; contract MESH_RETRY_BUFFER_BYTES={bytes}");
            Assert.True((string?)patch["applyTo"] == "VIRTUAL_HOST" && (string?)patch["patch"]?["operation"] == "MERGE",
                $"{Where(filter, i, "applyTo")}: the buffer limit is merged into the inference virtual host");
        }
        // Where the VirtualService's retries run: the gateway (external host) and callers' sidecars (in-mesh host).
        var covered = patches.Select(p => ((string?)p.Patch["match"]?["context"], (string?)p.Patch["match"]?["routeConfiguration"]?["vhost"]?["domainName"])).ToHashSet();
        Assert.Contains(("GATEWAY", ExternalHost), covered);
        Assert.Contains(("SIDECAR_OUTBOUND", InferenceHost), covered);
    }

    [Fact]
    public void Gateway_patches_target_the_Gateway_host()
    {
        // The Gateway (istio/gateway.yaml) is where inference.example.com comes from; when it is there, the hosts agree.
        var gatewayHosts = Manifests.Istio.Where(m => m.Kind == "Gateway" && m.Name == "inference-gateway")
            .SelectMany(g => (g.Spec["servers"] as JsonArray ?? []).SelectMany(s => (s?["hosts"] as JsonArray ?? []).Select(h => (string?)h)))
            .Select(h => h!.Contains('/') ? h[(h.IndexOf('/') + 1)..] : h)
            .ToHashSet();
        var hosts = Patches().Where(p => (string?)p.Patch["match"]?["context"] == "GATEWAY")
            .Select(p => (p.Filter, p.Index, Host: (string?)p.Patch["match"]?["routeConfiguration"]?["vhost"]?["domainName"]))
            .Where(p => p.Host is not null)
            .ToList();
        Assert.NotEmpty(hosts);
        foreach (var (filter, i, host) in hosts)
        {
            Assert.True(host == ExternalHost, $"{Where(filter, i, "match.routeConfiguration.vhost.domainName")}: {host}; expected {ExternalHost}");
            Assert.True(gatewayHosts.Count == 0 || gatewayHosts.Contains(host!),
                $"{Where(filter, i, "match.routeConfiguration.vhost.domainName")}: {host} is not a host of Gateway inference-gateway ({string.Join(", ", gatewayHosts)})");
        }
    }

    // --- the validator itself: each wrong body fails, naming the path ---

    private static IReadOnlyList<string> ValidateYaml(string yaml, string message)
    {
        var indented = string.Join('\n', yaml.Split('\n').Select(line => "  " + line));
        var body = Manifests.Parse("apiVersion: v1\nkind: T\nmetadata: {name: t}\nvalue:\n" + indented, "test").Single().Body["value"];
        return EnvoyFieldMap.Instance.Validate(body, message);
    }

    private const string HttpFilter = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";

    private const string GoodLocalRateLimit = """
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: x
            token_bucket: {max_tokens: 400, tokensPerFill: 200, fill_interval: 1s}
            filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}}
            rate_limited_as_resource_exhausted: true
          """;

    [Fact]
    public void Validator_accepts_a_good_body_under_proto_and_json_names()
    {
        Assert.Empty(ValidateYaml(GoodLocalRateLimit, HttpFilter));
    }

    [Theory]
    [InlineData("max_tokens: 400", "max_token: 400", "$.typed_config.token_bucket.max_token")] // misspelled field
    [InlineData("denominator: HUNDRED", "denominator: PERCENT", "$.typed_config.filter_enabled.default_value.denominator")] // wrong enum value
    [InlineData("fill_interval: 1s", "fill_interval: 1000", "$.typed_config.token_bucket.fill_interval")] // Duration as a number
    [InlineData("max_tokens: 400", "max_tokens: -1", "$.typed_config.token_bucket.max_tokens")] // uint32 out of range
    [InlineData("rate_limited_as_resource_exhausted: true", "rate_limited_as_resource_exhausted: \"yes\"", "$.typed_config.rate_limited_as_resource_exhausted")]
    [InlineData("local_ratelimit.v3.LocalRateLimit", "local_ratelimit.v3.LocalRateLimits", "$.typed_config.@type")] // wrong @type
    [InlineData("type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", "type.googleapis.com/envoy.config.filter.http.local_rate_limit.v2.LocalRateLimit", "$.typed_config.@type")] // v2 @type
    public void Validator_rejects_a_wrong_body_naming_the_path(string good, string bad, string path)
    {
        Assert.Contains(good, GoodLocalRateLimit, StringComparison.Ordinal);
        var errors = ValidateYaml(GoodLocalRateLimit.Replace(good, bad, StringComparison.Ordinal), HttpFilter);
        Assert.Contains(errors, e => e.StartsWith(path + ":", StringComparison.Ordinal));
    }

    [Fact]
    public void Validator_rejects_the_field_names_of_old_examples()
    {
        // v2-era HttpFilter `config` (removed for typed_config) and the ratelimit filter's removed `rate_limit_service`
        // cluster shorthand; and a Cluster `hosts` list (removed for load_assignment).
        var oldFilter = ValidateYaml("""
              name: envoy.filters.http.ratelimit
              config:
                domain: inference
            """, HttpFilter);
        Assert.Contains(oldFilter, e => e.StartsWith("$.config:", StringComparison.Ordinal));
        var oldCluster = ValidateYaml("""
              name: rl
              type: STRICT_DNS
              hosts:
                - socket_address: {address: ratelimit, port_value: 8081}
            """, "envoy.config.cluster.v3.Cluster");
        Assert.Contains(oldCluster, e => e.StartsWith("$.hosts:", StringComparison.Ordinal));
        var wrongType = ValidateYaml("""
              name: rl
              type: STRICT
            """, "envoy.config.cluster.v3.Cluster");
        Assert.Contains(wrongType, e => e.StartsWith("$.type:", StringComparison.Ordinal));
    }

    [Fact]
    public void Validator_checks_maps_of_Any_and_TypedStruct()
    {
        var cluster = ValidateYaml("""
              name: rl
              typed_extension_protocol_options:
                envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                  "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                  explicit_http_config:
                    http2_protocol_option: {}
            """, "envoy.config.cluster.v3.Cluster");
        Assert.Contains(cluster, e => e.StartsWith(
            "$.typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config.http2_protocol_option:", StringComparison.Ordinal));
        var typedStruct = ValidateYaml("""
              name: envoy.filters.http.ratelimit
              typed_config:
                "@type": type.googleapis.com/udpa.type.v1.TypedStruct
                type_url: type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                value:
                  domain: inference
                  failure_mode_deny: "false"
            """, HttpFilter);
        Assert.Contains(typedStruct, e => e.StartsWith("$.typed_config.value.failure_mode_deny:", StringComparison.Ordinal));
        Assert.Empty(ValidateYaml("""
              name: envoy.filters.http.ratelimit
              typed_config:
                "@type": type.googleapis.com/udpa.type.v1.TypedStruct
                type_url: type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                value: {domain: inference, failure_mode_deny: false, timeout: 0.1s}
            """, HttpFilter));
    }

    private static IEnumerable<string> MatchedNames(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, child) in obj)
                {
                    if (key == "name" && child is JsonValue v && v.GetValueKind() == JsonValueKind.String)
                    {
                        yield return (string)v!;
                    }
                    foreach (var name in MatchedNames(child))
                    {
                        yield return name;
                    }
                }
                break;
            case JsonArray array:
                foreach (var name in array.SelectMany(MatchedNames))
                {
                    yield return name;
                }
                break;
        }
    }
}
