using System.Text.Json.Nodes;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Tests.Deployment;

namespace InferenceServer.Tests.Mesh;

/// <summary>The split between subsets, read from and written to the shipped VirtualService.</summary>
public sealed class VirtualServiceSplitTests
{
    private static readonly VirtualServiceSplit Split = new("inference-server.inference.svc.cluster.local", "v1", "v2");

    private static JsonObject Shipped => Manifests.Istio.Single(m => m.Kind == "VirtualService" && m.Name == "inference-server").Body;

    [Fact]
    public void The_shipped_virtual_service_splits_90_10()
    {
        Assert.Equal((90, 10), Split.Read(Shipped));
    }

    [Fact]
    public void Writing_a_weight_changes_every_split_route_and_nothing_else()
    {
        var before = Shipped;
        var after = Split.With(before, 30);
        Assert.Equal((70, 30), Split.Read(after));
        var routes = before["spec"]!["http"]!.AsArray();
        var changed = 0;
        for (var i = 0; i < routes.Count; i++)
        {
            var a = routes[i]!.ToJsonString();
            var b = after["spec"]!["http"]![i]!.ToJsonString();
            if (a != b)
            {
                changed++;
                Assert.EndsWith("-split", (string?)routes[i]!["name"]);
            }
        }
        Assert.Equal(4, changed);
        Assert.Equal((90, 10), Split.Read(before));
    }

    [Fact]
    public void Split_routes_that_disagree_are_reported()
    {
        var vs = Split.With(Shipped, 10);
        var first = vs["spec"]!["http"]!.AsArray().First(r => ((string?)r!["name"])!.EndsWith("-split", StringComparison.Ordinal))!;
        first["route"]![0]!["weight"] = 50;
        first["route"]![1]!["weight"] = 50;
        var e = Assert.Throws<InvalidOperationException>(() => Split.Read(vs));
        Assert.Contains("disagree", e.Message);
        Assert.Throws<InvalidOperationException>(() => new VirtualServiceSplit("other.host", "v1", "v2").Read(Shipped));
    }
}
