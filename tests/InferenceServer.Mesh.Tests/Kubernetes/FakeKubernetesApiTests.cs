using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace InferenceServer.Tests.Mesh;

/// <summary>The fake API server answers KubernetesClient the way a real one would, for the calls the mesh code makes.</summary>
public sealed class FakeKubernetesApiTests
{
    private static Kubernetes Client(FakeKubernetesApi api) => new(new KubernetesClientConfiguration { Host = api.Url });

    [Fact]
    public async Task Custom_objects_are_read_and_server_side_applied_with_a_field_manager()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Put("networking.istio.io/v1", "virtualservices", (JsonObject)JsonNode.Parse("""
            {"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"vs","namespace":"inference"},
             "spec":{"hosts":["h"],"http":[{"name":"a"}]}}
            """)!);
        using var client = Client(api);
        var obj = await client.CustomObjects.GetNamespacedCustomObjectAsync<JsonObject>("networking.istio.io", "v1", "inference", "virtualservices", "vs");
        Assert.Equal("a", (string?)obj["spec"]!["http"]![0]!["name"]);

        var patch = """{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"vs","namespace":"inference","annotations":{"x":"1"}},"spec":{"http":[{"name":"b"}]}}""";
        await client.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch(patch, V1Patch.PatchType.ApplyPatch),
            "networking.istio.io", "v1", "inference", "virtualservices", "vs", fieldManager: "meshctl", force: true);
        var after = api.Get("networking.istio.io/v1", "inference", "virtualservices", "vs")!;
        Assert.Equal("b", (string?)after["spec"]!["http"]![0]!["name"]);
        Assert.Equal("h", (string?)after["spec"]!["hosts"]![0]);
        Assert.Equal("1", (string?)after["metadata"]!["annotations"]!["x"]);
        var write = Assert.Single(api.Writes);
        Assert.Equal("PATCH", write.Method);
        Assert.StartsWith("application/apply-patch+yaml", write.ContentType);
        Assert.Contains("fieldManager=meshctl", write.Query);
        Assert.Contains("force=true", write.Query);

        api.FailNext("PATCH", HttpStatusCode.Conflict);
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CustomObjects.PatchNamespacedCustomObjectAsync(
            new V1Patch(patch, V1Patch.PatchType.ApplyPatch), "networking.istio.io", "v1", "inference", "virtualservices", "vs", fieldManager: "meshctl"));
        Assert.Equal(HttpStatusCode.Conflict, e.Response.StatusCode);
    }

    [Fact]
    public async Task EndpointSlices_are_listed_by_label_and_watched()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Put("discovery.k8s.io/v1", "endpointslices", Slice("s1", "inference-server", 2));
        api.Put("discovery.k8s.io/v1", "endpointslices", Slice("other", "other", 1));
        using var client = Client(api);
        var list = await client.DiscoveryV1.ListNamespacedEndpointSliceAsync("inference", labelSelector: "kubernetes.io/service-name=inference-server");
        Assert.Equal(["s1"], list.Items.Select(s => s.Metadata.Name));

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var events = client.DiscoveryV1.WatchListNamespacedEndpointSliceAsync("inference",
            labelSelector: "kubernetes.io/service-name=inference-server", cancellationToken: cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await events.MoveNextAsync());
        Assert.Equal((WatchEventType.Added, "s1"), (events.Current.Item1, events.Current.Item2.Metadata.Name));
        api.Put("discovery.k8s.io/v1", "endpointslices", Slice("s1", "inference-server", 3));
        Assert.True(await events.MoveNextAsync());
        Assert.Equal(WatchEventType.Modified, events.Current.Item1);
        Assert.Equal(3, events.Current.Item2.Endpoints.Count);
    }

    private static JsonObject Slice(string name, string service, int endpoints) => new()
    {
        ["apiVersion"] = "discovery.k8s.io/v1",
        ["kind"] = "EndpointSlice",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "inference", ["labels"] = new JsonObject { ["kubernetes.io/service-name"] = service } },
        ["addressType"] = "IPv4",
        ["endpoints"] = new JsonArray(Enumerable.Range(0, endpoints).Select(i => (JsonNode)new JsonObject
        {
            ["addresses"] = new JsonArray($"10.0.0.{i + 1}"),
            ["conditions"] = new JsonObject { ["ready"] = true },
        }).ToArray()),
    };
}
