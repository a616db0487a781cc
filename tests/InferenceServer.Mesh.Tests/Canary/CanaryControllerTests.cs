using System.Net;
using System.Text.Json.Nodes;
using InferenceServer.Mesh.Canary;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Tests.Deployment;
using k8s;

namespace InferenceServer.Tests.Mesh;

/// <summary>
/// The rollout loop against the fake Kubernetes API (seeded with the shipped VirtualService) and a scripted analysis:
/// the exact writes, the weights through every step, the state annotation, rollback, resume, conflicts, foreign changes.
/// </summary>
public sealed class CanaryControllerTests
{
    internal const string Host = "inference-server.inference.svc.cluster.local";
    private const string ApiVersion = "networking.istio.io/v1";
    private static readonly VirtualServiceSplit Split = new(Host, "v1", "v2");
    private static readonly CanaryTarget Target = new("inference", "inference-server", Host, "v1", "v2");
    private static readonly string VsPath = FakeKubernetesApi.PathOf(ApiVersion, "inference", "virtualservices", "inference-server");

    internal static JsonObject Shipped => Manifests.Istio.Single(m => m.Kind == "VirtualService" && m.Name == "inference-server").Body;

    private static CanaryPlan Plan(TimeSpan? maxWait = null, params int[] steps) => new(
        steps.Length == 0 ? [10, 30, 80, 100] : steps, TimeSpan.Zero, TimeSpan.FromMilliseconds(10), maxWait,
        new CanaryThresholds(0.05, TimeSpan.FromSeconds(2.5), null, 100), [CanaryPlan.ServerSource, CanaryPlan.IstioSource], "inference-server-v2");

    internal static CanaryAnalysis Passed() => new(DateTimeOffset.UtcNow,
        [.. CanaryAnalysis.Judge("server", 500, 100, [("error rate", 0.01, 0.05, "ratio"), ("p95 latency", 0.2, 2.5, "seconds")])]);

    private static CanaryAnalysis Failing() => new(DateTimeOffset.UtcNow,
        [.. CanaryAnalysis.Judge("server", 500, 100, [("error rate", 0.2, 0.05, "ratio"), ("p95 latency", 0.2, 2.5, "seconds")])]);

    private static CanaryAnalysis TooFewRequests() => new(DateTimeOffset.UtcNow,
        [.. CanaryAnalysis.Judge("server", 12, 100, [("error rate", 0.5, 0.05, "ratio"), ("p95 latency", 0.2, 2.5, "seconds")])]);

    private static async Task<FakeKubernetesApi> SeededApiAsync(JsonObject? vs = null)
    {
        var api = await FakeKubernetesApi.StartAsync();
        api.Put(ApiVersion, "virtualservices", vs ?? Shipped);
        return api;
    }

    private static CanaryController Controller(FakeKubernetesApi api, ICanaryAnalyzer analyzer, TextWriter? log = null, bool dryRun = false) =>
        new(new Kubernetes(new KubernetesClientConfiguration { Host = api.Url }), Target, analyzer, TimeProvider.System, log ?? new StringWriter(), dryRun);

    private static JsonObject Stored(FakeKubernetesApi api) => api.Get(ApiVersion, "inference", "virtualservices", "inference-server")!;

    internal static CanaryState StateOf(JsonObject vs) => CanaryState.FromJson((string)vs["metadata"]!["annotations"]![CanaryState.AnnotationKey]!);

    /// <summary>Each write's canary weight and state (phase, step index), parsed from the patch body sent.</summary>
    private static List<(int Canary, string Phase, int Step)> Applied(FakeKubernetesApi api) =>
        api.Writes.Where(w => w.ContentType?.StartsWith("application/apply-patch+yaml", StringComparison.Ordinal) == true)
            .Select(w => (JsonObject)JsonNode.Parse(w.Body)!)
            .Select(p => (Split.Read(p).Canary, StateOf(p).Phase, StateOf(p).StepIndex)).ToList();

    [Fact]
    public async Task Good_analysis_moves_every_split_route_through_every_step_with_server_side_apply_as_meshctl()
    {
        await using var api = await SeededApiAsync();
        var analyzer = new ScriptedAnalyzer(_ => Passed());
        var result = await Controller(api, analyzer).StartAsync(Plan(), CancellationToken.None);

        Assert.Equal(CanaryResult.Succeeded, result);
        Assert.Equal(
            [(10, CanaryPhase.Progressing, 0), (30, CanaryPhase.Progressing, 1), (80, CanaryPhase.Progressing, 2), (100, CanaryPhase.Progressing, 3), (100, CanaryPhase.Succeeded, 3)],
            Applied(api));
        Assert.All(api.Writes, w =>
        {
            Assert.Equal(("PATCH", VsPath), (w.Method, w.Path));
            Assert.StartsWith("application/apply-patch+yaml", w.ContentType);
            Assert.Contains("fieldManager=meshctl", w.Query);
            Assert.Contains("force=true", w.Query);
            var patch = (JsonObject)JsonNode.Parse(w.Body)!;
            // Only what meshctl owns: identity, its annotation, spec.http (with a resourceVersion for optimistic concurrency).
            Assert.Equal(["apiVersion", "kind", "metadata", "spec"], patch.Select(p => p.Key));
            Assert.Equal(["http"], patch["spec"]!.AsObject().Select(p => p.Key));
            Assert.NotNull((string?)patch["metadata"]!["resourceVersion"]);
        });
        Assert.Equal(4, analyzer.Calls);

        var stored = Stored(api);
        Assert.Equal((0, 100), Split.Read(stored));
        Assert.Equal(Shipped["spec"]!["hosts"]!.ToJsonString(), stored["spec"]!["hosts"]!.ToJsonString());
        var state = StateOf(stored);
        Assert.Equal(CanaryPhase.Succeeded, state.Phase);
        Assert.Equal(["step", "step", "step", "step", "succeeded"], state.History.Select(e => e.Event));
        Assert.Equal(AnalysisVerdict.Passed, state.LastAnalysis!.Verdict);
    }

    [Fact]
    public async Task A_failed_analysis_restores_100_0_and_records_which_check_broke()
    {
        await using var api = await SeededApiAsync();
        var result = await Controller(api, new ScriptedAnalyzer(call => call == 1 ? Passed() : Failing())).StartAsync(Plan(), CancellationToken.None);

        Assert.Equal(CanaryResult.Failed, result);
        Assert.Equal([(10, CanaryPhase.Progressing, 0), (30, CanaryPhase.Progressing, 1), (0, CanaryPhase.Failed, 1)], Applied(api));
        var stored = Stored(api);
        Assert.Equal((100, 0), Split.Read(stored));
        var state = StateOf(stored);
        Assert.Equal(CanaryPhase.Failed, state.Phase);
        Assert.Contains("server error rate 20%", state.Reason);
        Assert.Contains("max 5%", state.Reason);
        Assert.DoesNotContain("p95", state.Reason);
        Assert.Equal("rollback", state.History[^1].Event);
    }

    [Fact]
    public async Task Too_few_requests_is_inconclusive_and_never_promotes_and_max_wait_fails_it()
    {
        await using (var api = await SeededApiAsync())
        {
            using var cts = new CancellationTokenSource();
            var analyzer = new ScriptedAnalyzer(call =>
            {
                if (call == 5)
                {
                    cts.Cancel();
                }
                return TooFewRequests();
            });
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Controller(api, analyzer).StartAsync(Plan(), cts.Token));
            var applied = Applied(api);
            Assert.True(applied.Count >= 4, string.Join(", ", applied));
            Assert.All(applied, a => Assert.Equal((10, CanaryPhase.Progressing, 0), a));
            var state = StateOf(Stored(api));
            Assert.Equal(AnalysisVerdict.Inconclusive, state.LastAnalysis!.Verdict);
            Assert.Equal((90, 10), Split.Read(Stored(api)));
        }

        await using (var api = await SeededApiAsync())
        {
            var result = await Controller(api, new ScriptedAnalyzer(_ => TooFewRequests())).StartAsync(Plan(TimeSpan.FromMilliseconds(50)), CancellationToken.None);
            Assert.Equal(CanaryResult.Failed, result);
            Assert.Equal((100, 0), Split.Read(Stored(api)));
            Assert.Contains("inconclusive", StateOf(Stored(api)).Reason);
            Assert.Contains("server requests 12 (< min 100)", StateOf(Stored(api)).Reason);
        }
    }

    [Fact]
    public async Task A_restarted_controller_resumes_at_the_recorded_step_with_the_recorded_plan()
    {
        // What a meshctl killed during step 3 (80 %) left behind.
        var recorded = CanaryState.Start(Target, Plan(), DateTimeOffset.UtcNow.AddMinutes(-3));
        recorded.StepIndex = 2;
        recorded.CanaryWeight = 80;
        var vs = Split.With(Shipped, 80);
        vs["metadata"]!["annotations"] = new JsonObject { [CanaryState.AnnotationKey] = recorded.ToJson() };
        await using var api = await SeededApiAsync(vs);

        // A dry run only says where it would resume.
        var dry = new StringWriter();
        Assert.Equal(CanaryResult.DryRun, await Controller(api, new ScriptedAnalyzer(_ => Passed()), dry, dryRun: true).StartAsync(Plan(), CancellationToken.None));
        Assert.Contains("resuming at step 3 of 4", dry.ToString());
        Assert.Empty(api.Writes);

        var log = new StringWriter();
        // A different plan on the command line: the recorded one wins.
        var result = await Controller(api, new ScriptedAnalyzer(_ => Passed()), log).StartAsync(Plan(null, 5, 50), CancellationToken.None);

        Assert.Equal(CanaryResult.Succeeded, result);
        Assert.Equal([(100, CanaryPhase.Progressing, 3), (100, CanaryPhase.Succeeded, 3)], Applied(api));
        Assert.Contains("resuming at step 3 of 4", log.ToString());
        Assert.Equal([10, 30, 80, 100], StateOf(Stored(api)).Steps);
    }

    [Fact]
    public async Task Promote_and_abort_set_100_percent_and_their_phase()
    {
        await using var api = await SeededApiAsync();
        Assert.Equal(CanaryResult.Promoted, await Controller(api, new ScriptedAnalyzer(_ => Passed())).PromoteAsync(CancellationToken.None));
        Assert.Equal((0, 100), Split.Read(Stored(api)));
        Assert.Equal(CanaryPhase.Promoted, StateOf(Stored(api)).Phase);

        Assert.Equal(CanaryResult.Aborted, await Controller(api, new ScriptedAnalyzer(_ => Passed())).AbortAsync(CancellationToken.None));
        Assert.Equal((100, 0), Split.Read(Stored(api)));
        Assert.Equal(CanaryPhase.Aborted, StateOf(Stored(api)).Phase);
        Assert.Equal([100, 0], Applied(api).Select(a => a.Canary));
    }

    [Fact]
    public async Task A_running_rollout_stops_when_another_meshctl_aborts_it()
    {
        await using var api = await SeededApiAsync();
        var analyzer = new ScriptedAnalyzer(call =>
        {
            if (call == 1)
            {
                // Another terminal: `meshctl canary abort`.
                Controller(api, new ScriptedAnalyzer(_ => Passed())).AbortAsync(CancellationToken.None).GetAwaiter().GetResult();
            }
            return Passed();
        });
        var result = await Controller(api, analyzer).StartAsync(Plan(), CancellationToken.None);
        // The abort landed between the loop's read and its write: the write re-reads, sees the Aborted phase and stops
        // without writing; the aborted 100/0 and its phase stay.
        Assert.Equal(CanaryResult.Aborted, result);
        Assert.Equal((100, 0), Split.Read(Stored(api)));
        Assert.Equal(CanaryPhase.Aborted, StateOf(Stored(api)).Phase);
        Assert.Equal([10, 0], Applied(api).Select(a => a.Canary));
    }

    [Fact]
    public async Task Dry_run_prints_every_step_patch_and_sends_nothing()
    {
        await using var api = await SeededApiAsync();
        var log = new StringWriter();
        var result = await Controller(api, new ScriptedAnalyzer(_ => throw new InvalidOperationException("no analysis in a dry run")), log, dryRun: true)
            .StartAsync(Plan(), CancellationToken.None);

        Assert.Equal(CanaryResult.DryRun, result);
        Assert.Empty(api.Writes);
        var text = log.ToString();
        Assert.Contains("fieldManager=meshctl", text);
        foreach (var (step, weight) in new[] { (1, 10), (2, 30), (3, 80), (4, 100) })
        {
            Assert.Contains($"--- step {step} of 4: v1 {100 - weight}% / v2 {weight}%", text);
        }
        Assert.Contains("\"weight\": 20", text);
        Assert.Equal((90, 10), Split.Read(Stored(api)));
    }

    [Fact]
    public async Task A_conflict_is_re_read_and_re_applied()
    {
        await using var api = await SeededApiAsync();
        api.FailNext("PATCH", HttpStatusCode.Conflict);
        var log = new StringWriter();
        var result = await Controller(api, new ScriptedAnalyzer(_ => Passed()), log).StartAsync(Plan(null, 50, 100), CancellationToken.None);

        Assert.Equal(CanaryResult.Succeeded, result);
        Assert.Contains("conflict writing VirtualService inference/inference-server (attempt 1 of 5)", log.ToString());
        // The first PATCH (409) and its retry carry the same weights; the retry follows a fresh GET.
        var requests = api.Requests.Select(r => r.Method).ToList();
        var firstPatch = requests.IndexOf("PATCH");
        Assert.Equal(["PATCH", "GET", "PATCH"], requests.Skip(firstPatch).Take(3));
        Assert.Equal([50, 50, 100, 100], Applied(api).Select(a => a.Canary));
        Assert.Equal((0, 100), Split.Read(Stored(api)));
    }

    [Fact]
    public async Task Weights_changed_by_someone_else_halt_the_rollout_without_touching_them()
    {
        await using var api = await SeededApiAsync();
        var analyzer = new ScriptedAnalyzer(call =>
        {
            if (call == 2)
            {
                // Someone runs a client-side `kubectl apply` of a file with 50/50 while meshctl is at 30 %.
                var changed = Split.With(Stored(api), 50);
                api.Put(ApiVersion, "virtualservices", changed);
            }
            return Passed();
        });
        var log = new StringWriter();
        var result = await Controller(api, analyzer, log).StartAsync(Plan(), CancellationToken.None);

        Assert.Equal(CanaryResult.Halted, result);
        Assert.Equal([10, 30], Applied(api).Select(a => a.Canary));
        var last = api.Writes[^1];
        Assert.StartsWith("application/merge-patch+json", last.ContentType);
        Assert.DoesNotContain("\"spec\"", last.Body);
        var stored = Stored(api);
        Assert.Equal((50, 50), Split.Read(stored));
        var state = StateOf(stored);
        Assert.Equal(CanaryPhase.Halted, state.Phase);
        Assert.Contains("someone else changed the weights to v1 50% / v2 50%", state.Reason);
        Assert.Contains("meshctl had set 70/30", state.Reason);
        Assert.Contains("halted:", log.ToString());

        // A new `start` refuses a halted rollout; `resume` puts the recorded 70/30 back and continues.
        await Assert.ThrowsAsync<CanaryException>(() => Controller(api, new ScriptedAnalyzer(_ => Passed())).StartAsync(Plan(), CancellationToken.None));
        Assert.Equal(CanaryResult.Succeeded, await Controller(api, new ScriptedAnalyzer(_ => Passed())).ResumeAsync(CancellationToken.None));
        Assert.Equal([10, 30, 30, 80, 100, 100], Applied(api).Select(a => a.Canary));
    }

    [Fact]
    public void Analysis_verdicts_judge_thresholds_only_with_enough_requests()
    {
        Assert.Equal(AnalysisVerdict.Passed, Passed().Verdict);
        Assert.Equal(AnalysisVerdict.Failed, Failing().Verdict);
        Assert.Equal(AnalysisVerdict.Inconclusive, TooFewRequests().Verdict);
        var noLatency = new CanaryAnalysis(DateTimeOffset.UtcNow, [.. CanaryAnalysis.Judge("server", 500, 100, [("p95 latency", null, 2.5, "seconds")])]);
        Assert.Equal(AnalysisVerdict.Inconclusive, noLatency.Verdict);
        var queryError = new CanaryAnalysis(DateTimeOffset.UtcNow, Passed().Checks, "Prometheus is unreachable");
        Assert.Equal(AnalysisVerdict.Inconclusive, queryError.Verdict);
        var slow = new CanaryAnalysis(DateTimeOffset.UtcNow, [.. CanaryAnalysis.Judge("server", 500, 100, [("p95 latency", 3.1, 2.5, "seconds")])]);
        Assert.Equal("server p95 latency 3.1s (> max 2.5s)", slow.Describe());
    }

    [Fact]
    public void The_default_queries_select_the_canary_pods_and_subset_and_count_only_server_side_failures()
    {
        var queries = new CanaryQueries();
        var request = new CanaryAnalysisRequest(Target, Plan(), TimeSpan.FromSeconds(90));
        var errors = queries.Render(CanaryQueries.ServerErrorRate, request);
        Assert.Contains("namespace=\"inference\",pod=~\"inference-server-v2-.*\"", errors);
        Assert.Contains("status=~\"INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED\"", errors);
        Assert.Contains("[90s]", errors);
        Assert.DoesNotContain("version=", errors);
        var istio = queries.Render(CanaryQueries.IstioErrorRate, request);
        Assert.Contains("destination_service_name=\"inference-server\"", istio);
        Assert.Contains("destination_version=\"v2\"", istio);
        Assert.Contains("reporter=\"destination\"", istio);
        foreach (var name in CanaryQueries.Defaults.Keys)
        {
            Assert.DoesNotMatch(@"\{(namespace|service|subset|deployment|window)\}", queries.Render(name, request));
        }
        queries.Set(CanaryQueries.ServerRequests, "sum(my_requests{ns=\"{namespace}\"})");
        Assert.Equal("sum(my_requests{ns=\"inference\"})", queries.Render(CanaryQueries.ServerRequests, request));
        Assert.Throws<ArgumentException>(() => queries.Set("nope", "x"));
    }

    /// <summary>Analysis results by call number (1-based), for the loop to act on.</summary>
    private sealed class ScriptedAnalyzer(Func<int, CanaryAnalysis> script) : ICanaryAnalyzer
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public Task<CanaryAnalysis> AnalyseAsync(CanaryAnalysisRequest request, CancellationToken cancellationToken) =>
            Task.FromResult(script(Interlocked.Increment(ref _calls)));
    }
}
