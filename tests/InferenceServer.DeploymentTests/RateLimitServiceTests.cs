using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// The global rate limit: the descriptors the gateway's actions send exist in the ratelimit service's config with the
/// contract's limits, and the filter, its cluster, the ratelimit Service and Deployment, Redis and the ConfigMap all
/// point at each other. (The envoyproxy/ratelimit binary is not available here; this checks its inputs.)
/// </summary>
public sealed partial class RateLimitServiceTests
{
    private const string Source = "istio/ratelimit-service.yaml";

    private static Manifest One(string kind, string name) =>
        Manifests.Istio.SingleOrDefault(m => m.Kind == kind && m.Name == name && m.Namespace == "inference")
        ?? throw new Xunit.Sdk.XunitException($"istio/: no {kind}/{name} in namespace inference");

    private static Manifest GlobalFilter => EnvoyFilterTests.EnvoyFilters.Single(f => f.Name == "inference-global-ratelimit");

    private static IEnumerable<JsonObject> Patches(Manifest filter) =>
        (filter.Spec["configPatches"] as JsonArray ?? []).Cast<JsonObject>();

    private static JsonObject RateLimitFilterConfig =>
        Patches(GlobalFilter).Select(p => p["patch"]?["value"])
            .Where(v => (string?)v?["name"] == "envoy.filters.http.ratelimit")
            .Select(v => (JsonObject)v!["typed_config"]!).Single();

    private static JsonObject RateLimitCluster =>
        Patches(GlobalFilter).Where(p => (string?)p["applyTo"] == "CLUSTER" && (string?)p["patch"]?["operation"] == "ADD")
            .Select(p => (JsonObject)p["patch"]!["value"]!).Single();

    /// <summary>The descriptor config in the ConfigMap (the file the service loads).</summary>
    private static JsonObject DescriptorConfig()
    {
        var map = One("ConfigMap", "ratelimit-config");
        var data = map.Body["data"] as JsonObject ?? throw new Xunit.Sdk.XunitException($"{map}: no data");
        var file = Assert.Single(data);
        Assert.True(file.Key.EndsWith(".yaml", StringComparison.Ordinal), $"{map}: data.{file.Key}: the service loads only *.yaml files");
        // Parsed as the value of a wrapper document, so it gets the manifests' YAML typing.
        var indented = string.Join('\n', ((string)file.Value!).Split('\n').Select(line => "  " + line));
        var wrapper = Manifests.Parse($"apiVersion: v1\nkind: RateLimitConfig\nmetadata: {{name: {map.Name}}}\nconfig:\n{indented}", $"{map} data.{file.Key}");
        return wrapper.Single().Body["config"] as JsonObject
               ?? throw new Xunit.Sdk.XunitException($"{map}: data.{file.Key} is not a mapping");
    }

    /// <summary>Every action list the gateway sends: the rate_limits of its virtual host and route patches.</summary>
    private static IEnumerable<(string Where, JsonArray Actions)> ActionLists()
    {
        var index = 0;
        foreach (var patch in Patches(GlobalFilter))
        {
            if (patch["patch"]?["value"]?["rate_limits"] is JsonArray limits)
            {
                for (var i = 0; i < limits.Count; i++)
                {
                    yield return ($"{GlobalFilter}: spec.configPatches[{index}].patch.value.rate_limits[{i}].actions", (JsonArray)limits[i]!["actions"]!);
                }
            }
            index++;
        }
    }

    /// <summary>The descriptor entries an action list produces: key, and the value when the action fixes it.</summary>
    private static List<(string Key, string? Value)> Entries(string where, JsonArray actions) =>
        actions.Select(a => (JsonObject)a!).Select(a => a.Single() switch
        {
            { Key: "request_headers", Value: var v } => ((string)v!["descriptor_key"]!, (string?)null),
            { Key: "metadata", Value: var v } => ((string)v!["descriptor_key"]!, null),
            { Key: "generic_key", Value: var v } => ((string?)v!["descriptor_key"] ?? "generic_key", (string?)v["descriptor_value"]),
            { Key: "header_value_match", Value: var v } => ((string?)v!["descriptor_key"] ?? "header_match", (string?)v["descriptor_value"]),
            { Key: "remote_address" } => ("remote_address", null),
            { Key: "destination_cluster" } => ("destination_cluster", null),
            { Key: "source_cluster" } => ("source_cluster", null),
            var other => throw new Xunit.Sdk.XunitException($"{where}: action {other.Key} is not one this test can follow"),
        }).ToList();

    /// <summary>Walks the config's descriptor tree along the entries; the matched rate_limit, or null.</summary>
    private static JsonObject? Lookup(JsonObject config, IReadOnlyList<(string Key, string? Value)> entries)
    {
        var level = config["descriptors"] as JsonArray;
        JsonObject? node = null;
        foreach (var (key, value) in entries)
        {
            // A fixed value must be listed; a value from the request matches the entry without a value (one budget per
            // distinct value).
            node = level?.Cast<JsonObject>().FirstOrDefault(d => (string?)d["key"] == key && (string?)d["value"] == value);
            if (node is null)
            {
                return null;
            }
            level = node["descriptors"] as JsonArray;
        }
        return node?["rate_limit"] as JsonObject;
    }

    [Fact]
    public void Every_action_list_has_a_limit_in_the_config_equal_to_the_contract()
    {
        var config = DescriptorConfig();
        var expected = new Dictionary<string, int>
        {
            ["model"] = Manifests.CInt("MESH_GLOBAL_RATE_LIMIT_MODEL_RPS"),
            ["tenant,model"] = Manifests.CInt("MESH_GLOBAL_RATE_LIMIT_TENANT_RPS"),
        };
        var lists = ActionLists().ToList();
        Assert.NotEmpty(lists);
        var seen = new HashSet<string>();
        foreach (var (where, actions) in lists)
        {
            var entries = Entries(where, actions);
            var keys = string.Join(",", entries.Select(e => e.Key));
            seen.Add(keys);
            var limit = Lookup(config, entries);
            Assert.True(limit is not null, $"{where}: sends [{keys}] but {Source} ConfigMap/ratelimit-config has no rate_limit at that path of its descriptor tree");
            Assert.True(expected.TryGetValue(keys, out var rps), $"{where}: [{keys}] is not a budget of the contract ({string.Join("; ", expected.Keys)})");
            Assert.True((string?)limit!["unit"] == "second" && limit["requests_per_unit"]?.GetValue<long>() == rps,
                $"{Source} ConfigMap/ratelimit-config: [{keys}] allows {limit["requests_per_unit"]} per {limit["unit"]}; contract says {rps} per second");
        }
        Assert.True(seen.SetEquals(expected.Keys), $"{GlobalFilter}: action lists [{string.Join("; ", seen)}]; expected one per budget [{string.Join("; ", expected.Keys)}]");
        // A tenant's budget on a model fits in the model's.
        Assert.True(expected["tenant,model"] <= expected["model"], "contract: MESH_GLOBAL_RATE_LIMIT_TENANT_RPS > MESH_GLOBAL_RATE_LIMIT_MODEL_RPS");
    }

    [Fact]
    public void Every_limit_in_the_config_is_reachable_by_an_action_list()
    {
        var sent = ActionLists().Select(l => string.Join(",", Entries(l.Where, l.Actions).Select(e => e.Key))).ToHashSet();
        var configured = new List<string>();
        void Walk(JsonArray? level, string prefix)
        {
            foreach (var d in level?.Cast<JsonObject>() ?? [])
            {
                var path = prefix.Length == 0 ? (string)d["key"]! : $"{prefix},{d["key"]}";
                if (d["rate_limit"] is not null)
                {
                    configured.Add(path);
                }
                Walk(d["descriptors"] as JsonArray, path);
            }
        }
        Walk(DescriptorConfig()["descriptors"] as JsonArray, "");
        Assert.NotEmpty(configured);
        foreach (var path in configured)
        {
            Assert.True(sent.Contains(path), $"{Source} ConfigMap/ratelimit-config: a limit at [{path}] that no action list of {GlobalFilter} sends");
        }
    }

    [Fact]
    public void Actions_read_the_contract_headers_and_never_double_charge_a_budget()
    {
        var tenantHeader = Manifests.C("INFERENCE_Admission__TenantHeader");
        foreach (var (where, actions) in ActionLists())
        {
            foreach (var action in actions.Select(a => (JsonObject)a!))
            {
                if (action["request_headers"] is JsonObject headers)
                {
                    Assert.True((string?)headers["header_name"] == tenantHeader,
                        $"{where}: request_headers.header_name {headers["header_name"]}; the tenant header is {tenantHeader} (INFERENCE_Admission__TenantHeader)");
                }
                // Skipping an absent entry shortens the descriptor, so [tenant, model] would become [model] and charge
                // the per-model budget twice.
                foreach (var (kind, body) in action)
                {
                    Assert.False(actions.Count > 1 && body?["skip_if_absent"]?.GetValue<bool>() == true,
                        $"{where}: {kind}.skip_if_absent in a multi-entry descriptor would collapse it onto a shorter one");
                }
            }
        }
    }

    [Fact]
    public void The_model_comes_from_the_lua_filter_the_metadata_actions_read()
    {
        var lua = Patches(GlobalFilter).Select(p => p["patch"]?["value"])
            .Single(v => (string?)v?["name"] == "envoy.filters.http.lua");
        var code = (string?)lua!["typed_config"]?["default_source_code"]?["inline_string"]
                   ?? throw new Xunit.Sdk.XunitException($"{GlobalFilter}: the Lua filter has no default_source_code.inline_string");
        // It must run before the rate limit filter: inserted in front of it.
        var luaPatch = Patches(GlobalFilter).Single(p => (string?)p["patch"]?["value"]?["name"] == "envoy.filters.http.lua");
        Assert.True((string?)luaPatch["patch"]?["operation"] == "INSERT_BEFORE"
                    && (string?)luaPatch["match"]?["listener"]?["filterChain"]?["filter"]?["subFilter"]?["name"] == "envoy.filters.http.ratelimit",
            $"{GlobalFilter}: the Lua filter must be inserted before envoy.filters.http.ratelimit");
        foreach (var (where, actions) in ActionLists())
        {
            foreach (var metadata in actions.Select(a => a?["metadata"]).Where(m => m is not null))
            {
                var ns = (string?)metadata!["metadata_key"]?["key"];
                var key = (string?)metadata["metadata_key"]?["path"]?[0]?["key"];
                Assert.True((string?)metadata["source"] is null or "DYNAMIC", $"{where}: metadata.source must be DYNAMIC (the Lua filter sets dynamic metadata)");
                Assert.True(code.Contains($"dynamicMetadata():set(\"{ns}\", \"{key}\"", StringComparison.Ordinal),
                    $"{where}: reads dynamic metadata {ns}/{key}, which the Lua filter does not set");
            }
        }
        Assert.Contains($"headers:get(\"{Manifests.C("MESH_MODEL_HEADER")}\")", code, StringComparison.Ordinal);

        // The Lua patterns used here are also valid .NET regexes; they pick the model out of the server's paths.
        var patterns = LuaMatch().Matches(code).Select(m => new Regex(m.Groups[1].Value)).ToList();
        Assert.NotEmpty(patterns);
        string? Model(string path) => patterns.Select(p => p.Match(path)).FirstOrDefault(m => m.Success)?.Groups[1].Value;
        Assert.Equal("simple", Model("/v2/models/simple/infer"));
        Assert.Equal("simple", Model("/v2/models/simple/versions/1/infer"));
        Assert.Equal("gpt2", Model("/v2/models/gpt2/generate_stream"));
        Assert.Equal("simple", Model("/v2/models/simple"));
        Assert.Equal("simple", Model("/v1/models/simple:predict"));
        Assert.Null(Model("/v2/health/ready"));
        Assert.Null(Model("/v1/chat/completions"));
    }

    [GeneratedRegex("string\\.match\\(path, \"([^\"]+)\"\\)")]
    private static partial Regex LuaMatch();

    [Fact]
    public void The_filter_fails_open_in_the_domain_of_the_config()
    {
        var filter = RateLimitFilterConfig;
        var where = $"{GlobalFilter}: envoy.filters.http.ratelimit typed_config";
        Assert.True(filter["failure_mode_deny"]?.GetValue<bool>() == false, $"{where}.failure_mode_deny must be false (fail open)");
        Assert.True((string?)filter["domain"] == (string?)DescriptorConfig()["domain"] && (string?)filter["domain"] == "inference",
            $"{where}.domain {filter["domain"]} and {Source} ConfigMap/ratelimit-config domain {DescriptorConfig()["domain"]} must both be inference");
        Assert.True((string?)filter["rate_limit_service"]?["transport_api_version"] == "V3", $"{where}.rate_limit_service.transport_api_version must be V3");
        Assert.True(filter["rate_limited_as_resource_exhausted"]?.GetValue<bool>() == true, $"{where}.rate_limited_as_resource_exhausted must be true");
        var timeout = EnvoyFilterTests.Seconds((string?)filter["timeout"]);
        Assert.True(timeout is > 0 and <= 1, $"{where}.timeout {timeout}s: a slow limiter must not hold requests for long (fail open after it)");
        var errors = new List<string>();
        EnvoyFilterTests.CheckRetryAfter(where, filter, 1, errors);
        Assert.Empty(errors);
    }

    [Fact]
    public void The_filter_calls_the_ratelimit_Service_through_its_own_cluster()
    {
        var cluster = RateLimitCluster;
        var name = (string?)cluster["name"];
        var where = $"{GlobalFilter}: CLUSTER {name}";
        Assert.Equal(name, (string?)RateLimitFilterConfig["rate_limit_service"]?["grpc_service"]?["envoy_grpc"]?["cluster_name"]);
        Assert.True((string?)cluster["type"] == "STRICT_DNS", $"{where}: type {cluster["type"]}; expected STRICT_DNS");
        Assert.True(cluster["typed_extension_protocol_options"]?["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]?["explicit_http_config"]?["http2_protocol_options"] is JsonObject,
            $"{where}: gRPC needs HTTP/2: typed_extension_protocol_options HttpProtocolOptions.explicit_http_config.http2_protocol_options");
        Assert.Equal(name, (string?)cluster["load_assignment"]?["cluster_name"]);
        var socket = cluster["load_assignment"]?["endpoints"]?[0]?["lb_endpoints"]?[0]?["endpoint"]?["address"]?["socket_address"];
        var service = One("Service", "ratelimit");
        var port = (service.Spec["ports"] as JsonArray)!.Single(p => (string?)p?["name"] == "grpc-ratelimit")!;
        Assert.True((string?)socket?["address"] == $"{service.Name}.{service.Namespace}.svc.cluster.local",
            $"{where}: address {socket?["address"]}; expected {service.Name}.{service.Namespace}.svc.cluster.local ({service})");
        Assert.True(socket?["port_value"]?.GetValue<long>() == port["port"]!.GetValue<long>(),
            $"{where}: port_value {socket?["port_value"]}; {service} port grpc-ratelimit is {port["port"]}");
        Assert.True(port["port"]!.GetValue<long>() == 8081 && (string?)port["appProtocol"] == "grpc", $"{service}: port grpc-ratelimit must be 8081 with appProtocol grpc");
    }

    private static JsonObject Container(Manifest deployment) =>
        (JsonObject)Assert.Single((deployment.Spec["template"]!["spec"]!["containers"] as JsonArray)!)!;

    private static Dictionary<string, string> Env(JsonObject container) =>
        (container["env"] as JsonArray ?? []).ToDictionary(e => (string)e!["name"]!, e => (string?)e!["value"] ?? "");

    private static long ContainerPort(Manifest deployment, JsonNode? targetPort)
    {
        var ports = Container(deployment)["ports"] as JsonArray ?? [];
        var match = targetPort is JsonValue v && v.TryGetValue<string>(out var name)
            ? ports.FirstOrDefault(p => (string?)p?["name"] == name)
            : ports.FirstOrDefault(p => p?["containerPort"]?.GetValue<long>() == targetPort?.GetValue<long>());
        return match?["containerPort"]?.GetValue<long>() ?? throw new Xunit.Sdk.XunitException($"{deployment}: no container port {targetPort?.ToJsonString()}");
    }

    private static void AssertSelects(Manifest service, Manifest deployment)
    {
        var selector = (JsonObject)service.Spec["selector"]!;
        var labels = (JsonObject)deployment.Spec["template"]!["metadata"]!["labels"]!;
        Assert.True(selector.All(kv => (string?)labels[kv.Key] == (string?)kv.Value), $"{service}: selector does not select the pods of {deployment}");
    }

    [Fact]
    public void The_ratelimit_Deployment_serves_the_Service_and_reads_the_ConfigMap()
    {
        var deployment = One("Deployment", "ratelimit");
        var service = One("Service", "ratelimit");
        AssertSelects(service, deployment);
        var container = Container(deployment);
        var env = Env(container);
        var servicePort = (service.Spec["ports"] as JsonArray)!.Single(p => (string?)p?["name"] == "grpc-ratelimit")!;
        var grpcPort = ContainerPort(deployment, servicePort["targetPort"]);
        Assert.True(env.GetValueOrDefault("GRPC_PORT") == grpcPort.ToString(CultureInfo.InvariantCulture),
            $"{deployment}: GRPC_PORT {env.GetValueOrDefault("GRPC_PORT")}; the Service's targetPort is container port {grpcPort}");
        Assert.True(env.GetValueOrDefault("USE_STATSD") == "false", $"{deployment}: USE_STATSD must be false (no statsd here)");
        Assert.True(env.GetValueOrDefault("REDIS_SOCKET_TYPE") == "tcp", $"{deployment}: REDIS_SOCKET_TYPE must be tcp");
        Assert.True(env.ContainsKey("LOG_LEVEL"), $"{deployment}: LOG_LEVEL");
        Assert.True(env.GetValueOrDefault("RUNTIME_WATCH_ROOT") == "false" && env.GetValueOrDefault("RUNTIME_IGNOREDOTFILES") == "true",
            $"{deployment}: a ConfigMap volume needs RUNTIME_WATCH_ROOT=false and RUNTIME_IGNOREDOTFILES=true");

        // RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY (default "config") is where the ConfigMap is mounted.
        var configDir = $"{env.GetValueOrDefault("RUNTIME_ROOT")}/{env.GetValueOrDefault("RUNTIME_SUBDIRECTORY")}/{env.GetValueOrDefault("RUNTIME_APPDIRECTORY", "config")}";
        var volume = (deployment.Spec["template"]!["spec"]!["volumes"] as JsonArray)!
            .Single(v => (string?)v?["configMap"]?["name"] == "ratelimit-config")!;
        var mount = (container["volumeMounts"] as JsonArray)!.SingleOrDefault(m => (string?)m?["name"] == (string?)volume["name"]);
        Assert.True((string?)mount?["mountPath"] == configDir,
            $"{deployment}: the service loads {configDir}/*.yaml but ConfigMap/ratelimit-config is mounted at {mount?["mountPath"]}");

        // Redis: the URL names the redis Service and its port, which reaches the redis container.
        var redis = One("Service", "ratelimit-redis");
        var redisDeployment = One("Deployment", "ratelimit-redis");
        AssertSelects(redis, redisDeployment);
        var redisPort = (redis.Spec["ports"] as JsonArray)!.Single()!;
        var url = env.GetValueOrDefault("REDIS_URL") ?? "";
        var validHosts = new[] { redis.Name, $"{redis.Name}.{redis.Namespace}", $"{redis.Name}.{redis.Namespace}.svc", $"{redis.Name}.{redis.Namespace}.svc.cluster.local" };
        var colon = url.LastIndexOf(':');
        Assert.True(colon > 0 && validHosts.Contains(url[..colon]) && url[(colon + 1)..] == redisPort["port"]!.ToJsonString(),
            $"{deployment}: REDIS_URL {url}; expected {redis.Name}.{redis.Namespace}.svc.cluster.local:{redisPort["port"]} ({redis})");
        Assert.Equal(6379, ContainerPort(redisDeployment, redisPort["targetPort"]));
    }

    [Fact]
    public void Ratelimit_and_redis_pods_are_pinned_non_root_and_probed()
    {
        foreach (var name in new[] { "ratelimit", "ratelimit-redis" })
        {
            var deployment = One("Deployment", name);
            var pod = deployment.Spec["template"]!;
            var container = Container(deployment);
            var image = (string)container["image"]!;
            var tag = image[(image.LastIndexOf('/') + 1)..].Split(':').ElementAtOrDefault(1);
            Assert.True(tag is not null and not "latest" and not "master" and not "main", $"{deployment}: image {image} must be pinned by a tag");
            Assert.True(pod["spec"]?["securityContext"]?["runAsNonRoot"]?.GetValue<bool>() == true, $"{deployment}: runAsNonRoot");
            Assert.True(container["securityContext"]?["readOnlyRootFilesystem"]?.GetValue<bool>() == true, $"{deployment}: readOnlyRootFilesystem");
            Assert.True(container["readinessProbe"] is not null && container["livenessProbe"] is not null, $"{deployment}: readiness and liveness probes");
            // The gateway's hand-made cluster is plaintext: a sidecar under STRICT mTLS would refuse it.
            Assert.True((string?)pod["metadata"]?["annotations"]?["sidecar.istio.io/inject"] == "false",
                $"{deployment}: sidecar.istio.io/inject must be \"false\" (the gateway's STRICT_DNS cluster has no Istio mTLS)");
        }
        var probe = Container(One("Deployment", "ratelimit"))["readinessProbe"]!["httpGet"]!;
        Assert.Equal("/healthcheck", (string?)probe["path"]);
        Assert.Equal(Env(Container(One("Deployment", "ratelimit"))).GetValueOrDefault("PORT"),
            ContainerPort(One("Deployment", "ratelimit"), probe["port"]).ToString(CultureInfo.InvariantCulture));
    }
}
