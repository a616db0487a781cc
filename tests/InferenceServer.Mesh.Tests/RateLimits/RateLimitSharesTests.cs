using InferenceServer.Mesh.RateLimits;
using k8s.Models;

namespace InferenceServer.Tests.Mesh;

/// <summary>The share computation and the ready-pod count, without a cluster.</summary>
public sealed class RateLimitSharesTests
{
    [Theory]
    // A 90/10 split of 100 rps: v1 scales 1 -> 3 -> 2 pods, the single v2 pod keeps the canary's 10.
    [InlineData(100, 90, 1, 90)]
    [InlineData(100, 90, 3, 30)]
    [InlineData(100, 90, 2, 45)]
    [InlineData(100, 10, 1, 10)]
    // Rounding up: 100 x 90% / 7 = 12.86 -> 13 (7 x 13 = 91 >= 90).
    [InlineData(100, 90, 7, 13)]
    [InlineData(100, 100, 3, 34)]
    // A tiny share is still at least one request per second.
    [InlineData(1, 10, 4, 1)]
    public void Each_pod_gets_the_ceiling_of_its_subsets_share(double budget, int weight, int ready, int expected)
    {
        var share = RateLimitShares.PerPod(budget, weight, ready);
        Assert.Equal(new PodShare(expected, expected), share);
    }

    [Fact]
    public void The_sum_over_pods_never_falls_below_the_budget()
    {
        foreach (var budget in new[] { 1.0, 7, 50, 100, 333, 1000, 12.5 })
        {
            for (var canary = 0; canary <= 100; canary += 5)
            {
                for (var stableReady = 1; stableReady <= 9; stableReady++)
                {
                    for (var canaryReady = 1; canaryReady <= 4; canaryReady++)
                    {
                        var sum = Sum(budget, 100 - canary, stableReady) + Sum(budget, canary, canaryReady);
                        Assert.True(sum >= budget, $"budget {budget}, {100 - canary}/{canary}, {stableReady}/{canaryReady} ready: the pods sum to {sum}");
                        // ... and exceeds it by less than one request per second per pod.
                        Assert.True(sum < budget + stableReady + canaryReady + 1e-9, $"budget {budget}: {sum} is more than rounding");
                    }
                }
            }
        }

        static double Sum(double budget, int weight, int ready) => (RateLimitShares.PerPod(budget, weight, ready)?.RequestsPerSecond ?? 0) * ready;
    }

    [Fact]
    public void A_subset_without_weight_or_ready_pods_gets_nothing_assigned()
    {
        Assert.Null(RateLimitShares.PerPod(100, 0, 3));
        Assert.Null(RateLimitShares.PerPod(100, 10, 0));
    }

    [Fact]
    public void The_burst_is_the_share_times_the_factor_rounded_up()
    {
        Assert.Equal(new PodShare(30, 30), RateLimitShares.PerPod(100, 90, 3, burstFactor: 1));
        Assert.Equal(new PodShare(30, 60), RateLimitShares.PerPod(100, 90, 3, burstFactor: 2));
        Assert.Equal(new PodShare(10, 15), RateLimitShares.PerPod(100, 10, 1, burstFactor: 1.5));
        Assert.Equal(new PodShare(1, 1), RateLimitShares.PerPod(1, 10, 4, burstFactor: 0.1));
    }

    [Theory]
    [InlineData("simple", "is not MODEL=REQUESTS_PER_SECOND")]
    [InlineData("simple=", "is not MODEL=REQUESTS_PER_SECOND")]
    [InlineData("=100", "is not MODEL=REQUESTS_PER_SECOND")]
    [InlineData("simple=abc", "must be a positive number, not 'abc'")]
    [InlineData("simple=0", "must be a positive number")]
    [InlineData("simple=-5", "must be a positive number")]
    public void A_bad_budget_is_refused_naming_it(string text, string message)
    {
        var e = Assert.Throws<FormatException>(() => ModelBudget.Parse(text));
        Assert.Contains(message, e.Message);
        Assert.Contains(text, e.Message);
    }

    [Fact]
    public void Budgets_parse_and_a_model_named_twice_is_refused()
    {
        Assert.Equal([new ModelBudget("simple", 100), new ModelBudget("other", 2.5)], ModelBudget.ParseAll(["simple=100", "other=2.5"]));
        Assert.Contains("'simple' has more than one budget", Assert.Throws<FormatException>(() => ModelBudget.ParseAll(["simple=1", "simple=2"])).Message);
    }

    [Fact]
    public void Ready_pods_are_the_ready_endpoints_that_are_pods_of_a_subset_counted_once()
    {
        var slices = k8s.KubernetesJson.Deserialize<List<V1EndpointSlice>>("""
            [{"metadata": {"name": "a"}, "addressType": "IPv4", "endpoints": [
               {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "v1-a"}},
               {"addresses": ["10.0.0.2"], "conditions": {}, "targetRef": {"kind": "Pod", "name": "v1-b"}},
               {"addresses": ["10.0.0.3"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "v1-c"}},
               {"addresses": ["10.0.0.4"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "v2-a"}},
               {"addresses": ["10.0.0.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "unlabelled"}},
               {"addresses": ["10.0.0.6"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "not-listed"}},
               {"addresses": ["10.0.0.7"], "conditions": {"ready": true}}]},
             {"metadata": {"name": "b"}, "addressType": "IPv4", "endpoints": [
               {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "v1-a"}}]}]
            """)!;
        var pods = new[] { ("v1-a", "v1"), ("v1-b", "v1"), ("v1-c", "v1"), ("v2-a", "v2"), ("unlabelled", null) }
            .Select(p => new V1Pod { Metadata = new V1ObjectMeta { Name = p.Item1, Labels = p.Item2 is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["version"] = p.Item2 } } });
        var subsets = new Dictionary<string, IReadOnlyDictionary<string, string>>
        {
            ["v1"] = new Dictionary<string, string> { ["version"] = "v1" },
            ["v2"] = new Dictionary<string, string> { ["version"] = "v2" },
        };
        var ready = MeshState.Join(slices, pods, subsets);
        Assert.Equal([new ReadyPod("v1-a", "10.0.0.1", "v1"), new ReadyPod("v1-b", "10.0.0.2", "v1"), new ReadyPod("v2-a", "10.0.0.4", "v2")], ready);
    }

    [Fact]
    public void The_plan_gives_each_subsets_pods_their_subsets_share_and_describes_it()
    {
        var state = new MeshState(
            new Dictionary<string, int> { ["v1"] = 90, ["v2"] = 10 },
            new Dictionary<string, IReadOnlyDictionary<string, string>>(),
            [new ReadyPod("a", "1", "v1"), new ReadyPod("b", "2", "v1"), new ReadyPod("c", "3", "v1"), new ReadyPod("d", "4", "v2")]);
        var plan = RateLimitPlan.Compute(state, [new ModelBudget("simple", 100), new ModelBudget("big", 1000)]);
        Assert.Equal(new PodShare(30, 30), plan.ShareOf("v1", "simple"));
        Assert.Equal(new PodShare(10, 10), plan.ShareOf("v2", "simple"));
        Assert.Equal(new PodShare(300, 300), plan.ShareOf("v1", "big"));
        Assert.Equal(new PodShare(330, 330), plan.SubsetOf("v1")!.Combined);
        Assert.Equal("simple=100 rps: v1 90% x 3 ready -> 30 rps (burst 30) each; v2 10% x 1 ready -> 10 rps (burst 10) each", plan.Describe().First());

        var promoted = RateLimitPlan.Compute(state with { Weights = new Dictionary<string, int> { ["v1"] = 0, ["v2"] = 100 } }, [new ModelBudget("simple", 100)]);
        Assert.Null(promoted.ShareOf("v1", "simple"));
        Assert.Null(promoted.SubsetOf("v1")!.Combined);
        Assert.Equal(new PodShare(100, 100), promoted.ShareOf("v2", "simple"));
        Assert.Contains("v1 0% x 3 ready -> nothing assigned", promoted.Describe().Single());
    }
}
