using System.CommandLine;
using System.Net;
using System.Text.Json.Nodes;
using InferenceServer.Mesh.RateLimits;
using InferenceServer.MeshCtl;
using InferenceServer.Tests.Deployment;
using k8s;
using static InferenceServer.Tests.Mesh.RateLimitTestMesh;

namespace InferenceServer.Tests.Mesh;

/// <summary>
/// <c>ratelimit sync</c> against the fake Kubernetes API with real servers as the pods (each on its own loopback address,
/// all on the same admin port, as pods share the contract's port): the shares follow the ready replicas 1 -> 3 -> 2 under
/// a 90/10 split, are applied through each pod's admin API and are enforced (429 past the bucket); the EnvoyFilter mode's
/// exact server-side-apply bodies; meshctl's answers to bad input.
/// </summary>
public sealed class RateLimitSyncTests
{
    private static readonly MeshPod V1a = new("inference-server-v1-aaaaa", "v1", "127.0.0.2");
    private static readonly MeshPod V1b = new("inference-server-v1-bbbbb", "v1", "127.0.0.3");
    private static readonly MeshPod V1c = new("inference-server-v1-ccccc", "v1", "127.0.0.4");
    private static readonly MeshPod V2a = new("inference-server-v2-aaaaa", "v2", "127.0.0.5");

    private static async Task<PodServer[]> StartPodsAsync(int adminPort, params MeshPod[] pods) =>
        await Task.WhenAll(pods.Select(p => StartPodAsync(p, adminPort)));

    private static async Task DisposeAllAsync(IEnumerable<PodServer> servers)
    {
        foreach (var server in servers)
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Admin_shares_follow_the_ready_replicas_under_a_90_10_split_and_are_enforced()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        MeshPod[] all = [V1a, V1b, V1c, V2a];
        var port = FreePort(all.Select(p => p.Address));
        Seed(api, canaryWeight: 10, port, all);
        var servers = await StartPodsAsync(port, all);
        try
        {
            using var client = new Kubernetes(new KubernetesClientConfiguration { Host = api.Url });
            using var http = new HttpClient();
            var lines = new List<string>();
            var sync = new RateLimitSync(client, http, new RateLimitSyncOptions { Budgets = [new ModelBudget("simple", 100)] }, lines.Add);

            // 1 v1 pod + 1 v2 pod: 90 and 10. The v1 pods not (yet) ready are left alone.
            SetReady(api, [V1a, V2a]);
            Assert.Empty((await sync.SyncOnceAsync(CancellationToken.None)).Failures);
            Assert.Equal((90, 90), await servers[0].LimitsAsync());
            Assert.Equal((null, null), await servers[1].LimitsAsync());
            Assert.Equal((10, 10), await servers[3].LimitsAsync());
            Assert.Contains("simple=100 rps: v1 90% x 1 ready -> 90 rps (burst 90) each; v2 10% x 1 ready -> 10 rps (burst 10) each", lines);

            // 3 v1 pods: 30 each; the canary pod keeps the canary's share, not a quarter of the budget.
            SetReady(api, [V1a, V1b, V1c, V2a]);
            Assert.Empty((await sync.SyncOnceAsync(CancellationToken.None)).Failures);
            Assert.Equal([(30, 30), (30, 30), (30, 30), (10, 10)], await Task.WhenAll(servers.Select(s => s.LimitsAsync())));

            // 2 v1 pods (the third is terminating: listed, not ready): 45 each; the terminating pod is not touched.
            SetReady(api, [V1a, V1b, V2a], notReady: [V1c]);
            Assert.Empty((await sync.SyncOnceAsync(CancellationToken.None)).Failures);
            Assert.Equal([(45, 45), (45, 45), (30, 30), (10, 10)], await Task.WhenAll(servers.Select(s => s.LimitsAsync())));

            // The share is real: a burst past the bucket is turned away with 429 + Retry-After, and the bucket's size is
            // the share (x-ratelimit-limit). Tokens refill during the burst, so successes are bounded, not exact.
            await AssertEnforcedAsync(servers[3], share: 10);
            await AssertEnforcedAsync(servers[0], share: 45);
        }
        finally
        {
            await DisposeAllAsync(servers);
        }
    }

    private static async Task AssertEnforcedAsync(PodServer server, int share)
    {
        // Three buckets' worth and more at once: even a slow machine sends them faster than two seconds of refill.
        var results = await server.BurstAsync(share * 3 + 40);
        var rejected = results.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(rejected);
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{server.Pod.Name}: {r.Status}"));
        Assert.All(rejected, r =>
        {
            Assert.NotNull(r.RetryAfter);
            Assert.Equal(share.ToString(System.Globalization.CultureInfo.InvariantCulture), r.Limit);
        });
        // At least the bucket's worth got through (the bucket was full), and fewer than all of them.
        Assert.InRange(results.Count(r => r.Status == HttpStatusCode.OK), share, results.Count - 1);
    }

    [Fact]
    public async Task Meshctl_sync_reports_a_failing_pod_and_applies_the_others_and_watch_follows_every_change()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        // A v1 pod nobody serves (its address refuses connections).
        var dead = new MeshPod("inference-server-v1-dead0", "v1", "127.0.0.9");
        MeshPod[] all = [V1a, V1b, V1c, V2a, dead];
        var port = FreePort(all.Select(p => p.Address));
        Seed(api, canaryWeight: 10, port, all);
        var servers = await StartPodsAsync(port, V1a, V1b, V1c, V2a);
        var kubeconfig = Kubeconfig(api);
        try
        {
            // One-shot: v1 has 2 ready pods (one dead): 45 each; the dead one is reported, the others applied, exit 1.
            SetReady(api, [V1a, dead, V2a]);
            var output = new StringWriter();
            var error = new StringWriter();
            var code = await MeshCommandLine.RunAsync(["ratelimit", "sync", "--model", "simple=100", "--kubeconfig", kubeconfig], output, error);
            Assert.True(code == 1, $"exit {code}\n{output}\n{error}");
            Assert.Equal((45, 45), await servers[0].LimitsAsync());
            Assert.Equal((10, 10), await servers[3].LimitsAsync());
            Assert.Contains($"admin {dead.Name} (127.0.0.9) simple: FAILED:", output.ToString());
            Assert.Contains($"admin {V1a.Name} (127.0.0.2) simple: 45 rps (burst 45)", output.ToString());
            Assert.Contains("1 of the updates failed", error.ToString());

            // --watch: 1 -> 3 -> 2 ready v1 pods, then a canary step to 30%; every change is followed.
            SetReady(api, [V1a, V2a]);
            using var stop = new CancellationTokenSource();
            var watchText = new StringWriter();
            var watchOutput = TextWriter.Synchronized(watchText);
            var watching = MeshCommandLine.Build().Parse(["ratelimit", "sync", "--model", "simple=100", "--watch", "--kubeconfig", kubeconfig])
                .InvokeAsync(new InvocationConfiguration { Output = watchOutput, Error = watchOutput }, stop.Token);
            await servers[0].WaitForLimitsAsync(90, 90);

            SetReady(api, [V1a, V1b, V1c, V2a]);
            foreach (var server in servers[..3])
            {
                await server.WaitForLimitsAsync(30, 30);
            }

            SetReady(api, [V1a, V1b, V2a], notReady: [V1c]);
            await servers[0].WaitForLimitsAsync(45, 45);
            await servers[1].WaitForLimitsAsync(45, 45);
            Assert.Equal((30, 30), await servers[2].LimitsAsync());

            api.Put("networking.istio.io/v1", "virtualservices", ShippedVirtualService(30));
            await servers[0].WaitForLimitsAsync(35, 35);
            await servers[1].WaitForLimitsAsync(35, 35);
            await servers[3].WaitForLimitsAsync(30, 30);

            await stop.CancelAsync();
            Assert.Equal(0, await watching);
            lock (watchOutput)
            {
                Assert.Contains("changed: EndpointSlice inference-server-abcde", watchText.ToString());
            }
        }
        finally
        {
            await DisposeAllAsync(servers);
        }
    }

    [Fact]
    public async Task Envoyfilter_mode_server_side_applies_one_filter_per_subset_with_its_share_as_the_token_bucket()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        MeshPod[] all = [V1a, V1b, V1c, V2a];
        Seed(api, canaryWeight: 10, adminPort: 8002, all);
        SetReady(api, [V1a, V1b, V1c, V2a]);
        var kubeconfig = Kubeconfig(api);
        // A conflict on the first write: retried.
        api.FailNext("PATCH", HttpStatusCode.Conflict);
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await MeshCommandLine.RunAsync(
            ["ratelimit", "sync", "--model", "simple=100", "--model", "big=1000", "--apply", "envoyfilter", "--kubeconfig", kubeconfig], output, error);
        Assert.True(code == 0, $"exit {code}\n{output}\n{error}");

        var writes = api.Writes;
        Assert.Equal(3, writes.Count);
        var v1Path = FakeKubernetesApi.PathOf("networking.istio.io/v1alpha3", Ns, "envoyfilters", "inference-local-ratelimit-v1");
        var v2Path = FakeKubernetesApi.PathOf("networking.istio.io/v1alpha3", Ns, "envoyfilters", "inference-local-ratelimit-v2");
        Assert.Equal([v1Path, v1Path, v2Path], writes.Select(w => w.Path));
        Assert.All(writes, w =>
        {
            Assert.Equal("PATCH", w.Method);
            Assert.StartsWith("application/apply-patch+yaml", w.ContentType);
            Assert.Contains("fieldManager=meshctl", w.Query);
            Assert.Contains("force=true", w.Query);
        });
        // v1: 3 pods x (30 for simple + 300 for big) per pod; v2: one pod with 10 + 100.
        Assert.Equal(Expected("v1", 330, "simple=30,big=300").ToJsonString(), JsonNode.Parse(writes[2 - 1].Body)!.ToJsonString());
        Assert.Equal(Expected("v2", 110, "simple=10,big=100").ToJsonString(), JsonNode.Parse(writes[2].Body)!.ToJsonString());
        Assert.Contains("envoyfilter inference-local-ratelimit-v1: token bucket 330/s, max 330", output.ToString());

        // Stored as applied, and valid for Istio (the CRD schema) and for Envoy (every field of the patch value).
        foreach (var (subset, body) in new[] { ("v1", writes[1].Body), ("v2", writes[2].Body) })
        {
            var applied = (JsonObject)JsonNode.Parse(body)!;
            var stored = api.Get("networking.istio.io/v1alpha3", Ns, "envoyfilters", "inference-local-ratelimit-" + subset)!;
            Assert.Equal(applied["spec"]!.ToJsonString(), stored["spec"]!.ToJsonString());
            var manifest = new Manifest("meshctl", "networking.istio.io/v1alpha3", "EnvoyFilter", "inference-local-ratelimit-" + subset, Ns, applied);
            var problems = IstioSchema.Validate(manifest);
            Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
            var patches = applied["spec"]!["configPatches"]!.AsArray();
            Assert.Equal([8000, 8001], patches.Select(p => (int)p!["match"]!["listener"]!["portNumber"]!));
            foreach (var patch in patches)
            {
                var errors = EnvoyFieldMap.Instance.Validate(patch!["patch"]!["value"], EnvoyFilterTests.MessageOfApplyTo["HTTP_FILTER"]);
                Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
            }
        }
    }

    /// <summary>The apply body for a subset, written out: the shipped filter's value with the subset's bucket.</summary>
    private static JsonObject Expected(string subset, int tokens, string shares) => (JsonObject)JsonNode.Parse($$$"""
        {"apiVersion":"networking.istio.io/v1alpha3","kind":"EnvoyFilter",
         "metadata":{"name":"inference-local-ratelimit-{{{subset}}}","namespace":"inference",
           "labels":{"app":"inference-server","app.kubernetes.io/managed-by":"meshctl"},
           "annotations":{"inference-server/rate-limit-shares":"{{{shares}}}"}},
         "spec":{"workloadSelector":{"labels":{"app":"inference-server","version":"{{{subset}}}"}},
           "configPatches":[{{{Patch(8000, subset, tokens)}}},{{{Patch(8001, subset, tokens)}}}]} }
        """)!;

    private static string Patch(int port, string subset, int tokens) => $$$"""
        {"applyTo":"HTTP_FILTER",
         "match":{"context":"SIDECAR_INBOUND","listener":{"portNumber":{{{port}}},"filterChain":{"filter":{"name":"envoy.filters.network.http_connection_manager","subFilter":{"name":"envoy.filters.http.router"} } } } },
         "patch":{"operation":"INSERT_BEFORE","value":{"name":"envoy.filters.http.local_ratelimit","typed_config":{
           "@type":"type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
           "stat_prefix":"inference_local_ratelimit_{{{subset}}}",
           "token_bucket":{"max_tokens":{{{tokens}}},"tokens_per_fill":{{{tokens}}},"fill_interval":"1s"},
           "filter_enabled":{"runtime_key":"inference_local_ratelimit_enabled","default_value":{"numerator":100,"denominator":"HUNDRED"}},
           "filter_enforced":{"runtime_key":"inference_local_ratelimit_enforced","default_value":{"numerator":100,"denominator":"HUNDRED"}},
           "status":{"code":"TooManyRequests"},
           "rate_limited_as_resource_exhausted":true,
           "enable_x_ratelimit_headers":"DRAFT_VERSION_03",
           "response_headers_to_add":[
             {"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"retry-after","value":"1"}},
             {"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"grpc-retry-pushback-ms","value":"1000"} }]} } } }
        """;

    [Fact]
    public async Task Dry_run_prints_the_shares_and_the_requests_and_changes_nothing()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        Seed(api, canaryWeight: 10, adminPort: 8002, [V1a, V2a]);
        SetReady(api, [V1a, V2a]);
        var output = new StringWriter();
        var code = await MeshCommandLine.RunAsync(
            ["ratelimit", "sync", "--model", "simple=100", "--apply", "both", "--dry-run", "--subset-label", "version", "--kubeconfig", Kubeconfig(api)], output, new StringWriter());
        Assert.Equal(0, code);
        Assert.Empty(api.Writes);
        Assert.Contains($"admin {V1a.Name} (127.0.0.2) simple: would PUT http://127.0.0.2:8002/v2/admin/limits/simple {{\"requests_per_second\":90,\"burst\":90}}", output.ToString());
        Assert.Contains("envoyfilter inference-local-ratelimit-v2: would apply (fieldManager meshctl)", output.ToString());
        // --subset-label: the DestinationRule was not read.
        Assert.DoesNotContain(api.Requests, r => r.Path.Contains("destinationrules", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(new[] { "ratelimit", "sync" }, "give at least one budget: --model MODEL=REQUESTS_PER_SECOND")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple" }, "budget 'simple' is not MODEL=REQUESTS_PER_SECOND")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=fast" }, "must be a positive number, not 'fast'")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=1", "--model", "simple=2" }, "'simple' has more than one budget")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=1", "--apply", "sidecar" }, "--apply must be admin, envoyfilter or both, not 'sidecar'")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=1", "--burst-factor", "0" }, "--burst-factor must be a positive number")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=1", "--admin-port", "70000" }, "--admin-port must be a port number")]
    [InlineData(new[] { "ratelimit", "sync", "--model", "simple=1", "--kubeconfig", "/nonexistent/kubeconfig" }, "cannot connect to Kubernetes")]
    public async Task Bad_input_is_a_clear_message_and_exit_code_2(string[] args, string message)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await MeshCommandLine.RunAsync(args, output, error);
        Assert.True(code == 2, $"exit {code}: {output}{error}");
        Assert.Contains(message, error.ToString());
        Assert.DoesNotContain("   at ", error.ToString() + output);
    }

    [Fact]
    public async Task A_missing_DestinationRule_is_named()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        Seed(api, canaryWeight: 10, adminPort: 8002, [V1a]);
        api.Delete("networking.istio.io/v1", Ns, "destinationrules", "inference-server");
        var error = new StringWriter();
        var code = await MeshCommandLine.RunAsync(["ratelimit", "sync", "--model", "simple=100", "--kubeconfig", Kubeconfig(api)], new StringWriter(), error);
        Assert.Equal(1, code);
        Assert.Contains("DestinationRule inference/inference-server not found", error.ToString());
    }
}
