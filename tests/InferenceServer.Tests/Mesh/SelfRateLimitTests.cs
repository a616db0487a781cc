using InferenceServer.Hosting;
using static InferenceServer.Tests.Mesh.RateLimitTestMesh;

namespace InferenceServer.Tests.Mesh;

/// <summary>
/// The server's in-pod option (<c>Mesh:SelfRateLimit</c>): a real server pointed at the fake Kubernetes API (through a
/// kubeconfig) follows its Service's EndpointSlices and the VirtualService's weights and sets its own limits.
/// </summary>
public sealed class SelfRateLimitTests
{
    private static readonly MeshPod Self = new("inference-server-v1-self0", "v1", "127.0.0.6");
    private static readonly MeshPod Peer1 = new("inference-server-v1-peer1", "v1", "10.1.0.11");
    private static readonly MeshPod Peer2 = new("inference-server-v1-peer2", "v1", "10.1.0.12");
    private static readonly MeshPod Canary = new("inference-server-v2-cana0", "v2", "10.1.0.21");

    [Fact]
    public async Task The_server_sets_its_own_share_as_replicas_and_weights_change()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        MeshPod[] all = [Self, Peer1, Peer2, Canary];
        var port = FreePort([Self.Address]);
        Seed(api, canaryWeight: 10, port, all);
        SetReady(api, [Self, Canary]);
        await using var server = await StartPodAsync(Self, port, new Dictionary<string, string?>
        {
            ["Mesh:SelfRateLimit:Enabled"] = "true",
            ["Mesh:SelfRateLimit:Budgets:0"] = "simple=100",
            ["Mesh:SelfRateLimit:Budgets:1"] = "other=1000",
            ["Mesh:SelfRateLimit:Subset"] = "v1",
            ["Mesh:SelfRateLimit:Namespace"] = Ns,
            ["Mesh:SelfRateLimit:Kubeconfig"] = Kubeconfig(api),
            ["Mesh:SelfRateLimit:DebounceSeconds"] = "0.05",
            // Another field of the model's override, which the option must keep.
            ["Admission:Models:simple:MaxConcurrency"] = "7",
        });

        // Alone in v1 at 90%: 90 (and 900 of the other budget).
        await server.WaitForLimitsAsync(90, 90);
        await server.WaitForLimitsAsync(900, 900, "other");

        SetReady(api, [Self, Peer1, Peer2, Canary]);
        await server.WaitForLimitsAsync(30, 30);

        SetReady(api, [Self, Peer1, Canary], notReady: [Peer2]);
        await server.WaitForLimitsAsync(45, 45);

        // A canary step to 50%: two v1 pods share 50.
        api.Put("networking.istio.io/v1", "virtualservices", ShippedVirtualService(50));
        await server.WaitForLimitsAsync(25, 25);

        // Promoted to 100% v2: v1 gets nothing assigned, its limits stay as they were. The fake records a request when it
        // handles it, so a pod list recorded after this point belongs to a sync that read the 100% weights.
        api.Put("networking.istio.io/v1", "virtualservices", ShippedVirtualService(100));
        var seen = api.Requests.Count;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!api.Requests.Skip(seen).Any(r => r.Path.EndsWith("/pods", StringComparison.Ordinal) && !r.Query.Contains("watch=true")))
        {
            Assert.True(DateTime.UtcNow < deadline, "the server did not read the mesh again after the VirtualService changed");
            await Task.Delay(20);
        }
        Assert.Equal((25, 25), await server.LimitsAsync());

        var simple = System.Text.Json.Nodes.JsonNode.Parse(await server.Admin.GetStringAsync("/v2/admin/limits/simple"))!["limits"]!;
        Assert.Equal(7, (int)simple["max_concurrency"]!);
    }

    [Theory]
    [InlineData(new string[0], "enabled without a budget")]
    [InlineData(new[] { "--self-rate-limit-budget", "simple" }, "is not MODEL=REQUESTS_PER_SECOND")]
    [InlineData(new[] { "--self-rate-limit-budget", "simple=10", "--self-rate-limit-subset", "v3" }, "Subset 'v3' is neither the stable subset 'v1' nor the canary 'v2'")]
    [InlineData(new[] { "--self-rate-limit-budget", "simple=10" }, "Mesh:SelfRateLimit:Subset is not set")]
    public void A_bad_configuration_is_refused_at_start_naming_it(string[] args, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => InferenceServerApp.Create(["--self-rate-limit", "true", .. args]));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void The_flags_set_the_option()
    {
        var values = CommandLine.Parse(["--self-rate-limit", "true", "--self-rate-limit-budget", "a=1", "--self-rate-limit-budget", "b=2", "--self-rate-limit-subset", "v2"]);
        Assert.Equal("true", values["Mesh:SelfRateLimit:Enabled"]);
        Assert.Equal("a=1", values["Mesh:SelfRateLimit:Budgets:0"]);
        Assert.Equal("b=2", values["Mesh:SelfRateLimit:Budgets:1"]);
        Assert.Equal("v2", values["Mesh:SelfRateLimit:Subset"]);
        var env = CommandLine.FromEnvironment(new System.Collections.Hashtable { ["INFERENCE_SELF_RATE_LIMIT_BUDGET"] = "a=1, b=2" });
        Assert.Equal("b=2", env["Mesh:SelfRateLimit:Budgets:1"]);
    }
}
