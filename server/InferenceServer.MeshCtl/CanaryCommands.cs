using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Mesh.Canary;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Mesh.Prometheus;

namespace InferenceServer.MeshCtl;

/// <summary><c>meshctl canary start|resume|status|promote|abort</c>.</summary>
internal static class CanaryCommands
{
    /// <summary>Exit code of bad input (an option value that does not parse or makes no sense).</summary>
    public const int BadInput = 2;

    /// <summary>Exit code of a rollout that halted because someone else changed the weights.</summary>
    public const int Halted = 3;

    private static readonly Option<string?> Kubeconfig = new("--kubeconfig") { Description = "kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)" };
    private static readonly Option<string?> Context = new("--context") { Description = "kubeconfig context" };
    private static readonly Option<string> Namespace = new("--namespace", "-n") { Description = "namespace of the VirtualService", DefaultValueFactory = _ => "inference" };
    private static readonly Option<string> VirtualService = new("--virtual-service") { Description = "VirtualService whose split routes are moved", DefaultValueFactory = _ => "inference-server" };
    private static readonly Option<string?> Host = new("--host") { Description = "destination host of the split (default <virtual-service>.<namespace>.svc.cluster.local)" };
    private static readonly Option<string> Stable = new("--stable") { Description = "stable subset", DefaultValueFactory = _ => "v1" };
    private static readonly Option<string> Canary = new("--canary") { Description = "canary subset", DefaultValueFactory = _ => "v2" };
    private static readonly Option<string?> Prometheus = new("--prometheus") { Description = "Prometheus base URL, e.g. http://prometheus.monitoring:9090 (start, resume)" };
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "print the patches that would be sent; send nothing" };
    private static readonly Option<string> Steps = new("--steps") { Description = "the canary's weight at each step, increasing, e.g. 10,30,80,100", DefaultValueFactory = _ => "10,30,80,100" };
    private static readonly Option<string> Pause = new("--pause") { Description = "least time at each step, e.g. 5m (s, m, h)", DefaultValueFactory = _ => "5m" };
    private static readonly Option<string> Interval = new("--interval") { Description = "analysis window and re-check period, e.g. 1m", DefaultValueFactory = _ => "1m" };
    private static readonly Option<string?> MaxWait = new("--max-wait") { Description = "fail a step still inconclusive this long after its pause (default: wait)" };
    private static readonly Option<string> MaxErrorRate = new("--max-error-rate") { Description = "highest failed share of requests, 0..1", DefaultValueFactory = _ => "0.05" };
    private static readonly Option<string> MaxP95Latency = new("--max-p95-latency") { Description = "highest p95 request duration, e.g. 2.5s", DefaultValueFactory = _ => "2.5s" };
    private static readonly Option<string?> MaxTtftP95 = new("--max-ttft-p95") { Description = "highest p95 time to first token (generative models; not checked unless given)" };
    private static readonly Option<string> MinRequests = new("--min-requests") { Description = "fewest canary requests per window for a verdict", DefaultValueFactory = _ => "100" };
    private static readonly Option<string> Sources = new("--sources") { Description = "metric sources analysed: server, istio or both", DefaultValueFactory = _ => "server,istio" };
    private static readonly Option<string?> CanaryDeployment = new("--canary-deployment") { Description = "the canary's Deployment, its pods are <name>-* (default <service>-<canary>)" };
    private static readonly Option<string[]> Queries = new("--query") { Description = "replace an analysis query: NAME=PROMQL (names: " + string.Join(", ", CanaryQueries.Defaults.Keys) + ")", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string> Output = new("--output", "-o") { Description = "status format: text or json", DefaultValueFactory = _ => "text" };

    public static Command Build()
    {
        var canary = new Command("canary", "progressive canary: move the VirtualService split step by step, analyse the canary on Prometheus, roll back on failure");
        var start = Command("start", "start a rollout (or resume the one recorded on the VirtualService) and run it to its end",
            DryRun, Prometheus, Steps, Pause, Interval, MaxWait, MaxErrorRate, MaxP95Latency, MaxTtftP95, MinRequests, Sources, CanaryDeployment, Queries);
        start.SetAction((r, ct) => RunAsync(r, ct, async (controller, target, output) =>
        {
            var plan = ParsePlan(r, target);
            return await controller(r.GetValue(DryRun) ? null : Analyzer(r)).StartAsync(plan, ct);
        }));
        var resume = Command("resume", "continue the rollout recorded on the VirtualService (a halted one gets its recorded weights back)", DryRun, Prometheus, Queries);
        resume.SetAction((r, ct) => RunAsync(r, ct, async (controller, _, _) => await controller(r.GetValue(DryRun) ? null : Analyzer(r)).ResumeAsync(ct)));
        var promote = Command("promote", "give the canary 100% now, skipping the remaining analysis (phase Promoted)", DryRun);
        promote.SetAction((r, ct) => RunAsync(r, ct, async (controller, _, _) => await controller(null).PromoteAsync(ct)));
        var abort = Command("abort", "give the stable subset 100% now (phase Aborted)", DryRun);
        abort.SetAction((r, ct) => RunAsync(r, ct, async (controller, _, _) =>
        {
            // The abort itself succeeded (exit 0); a rollout that ends Aborted under `start` exits 1.
            var result = await controller(null).AbortAsync(ct);
            return result == CanaryResult.Aborted ? null : result;
        }));
        var status = Command("status", "show the recorded rollout and the current weights", Output);
        status.SetAction((r, ct) => RunAsync(r, ct, async (controller, target, output) =>
        {
            var format = r.GetValue(Output);
            if (format is not ("text" or "json"))
            {
                throw new UsageException($"--output '{format}' is not text or json");
            }
            var (state, weights) = await controller(null).StatusAsync(ct);
            output.WriteLine(format == "json" ? StatusJson(state, weights, target) : StatusText(state, weights, target, TimeProvider.System.GetUtcNow()));
            return null;
        }));
        foreach (var command in new[] { start, resume, status, promote, abort })
        {
            canary.Subcommands.Add(command);
        }
        return canary;
    }

    private static Command Command(string name, string description, params Option[] options)
    {
        var command = new Command(name, description);
        foreach (var option in new Option[] { Kubeconfig, Context, Namespace, VirtualService, Host, Stable, Canary }.Concat(options))
        {
            command.Options.Add(option);
        }
        return command;
    }

    /// <summary>Bad input, reported with exit code 2.</summary>
    private sealed class UsageException(string message) : Exception(message);

    private static async Task<int> RunAsync(ParseResult r, CancellationToken ct,
        Func<Func<ICanaryAnalyzer?, CanaryController>, CanaryTarget, TextWriter, Task<CanaryResult?>> action)
    {
        var output = r.InvocationConfiguration.Output;
        var error = r.InvocationConfiguration.Error;
        try
        {
            var ns = r.GetValue(Namespace)!;
            var vs = r.GetValue(VirtualService)!;
            var target = new CanaryTarget(ns, vs, r.GetValue(Host) ?? $"{vs}.{ns}.svc.cluster.local", r.GetValue(Stable)!, r.GetValue(Canary)!);
            if (target.Stable == target.Canary)
            {
                throw new UsageException($"--stable and --canary are both '{target.Stable}'");
            }
            var kubeconfig = r.GetValue(Kubeconfig);
            if (kubeconfig is not null && !File.Exists(kubeconfig))
            {
                throw new UsageException($"--kubeconfig {kubeconfig}: no such file");
            }
            using var kubernetes = KubernetesConnection.Connect(kubeconfig, r.GetValue(Context));
            var dryRun = r.GetValue(DryRun);
            var result = await action(analyzer => new CanaryController(kubernetes, target,
                analyzer ?? NoAnalysis.Instance, TimeProvider.System, output, dryRun), target, output);
            return result switch
            {
                null or CanaryResult.Succeeded or CanaryResult.Promoted or CanaryResult.DryRun => 0,
                CanaryResult.Halted => Halted,
                _ => 1,
            };
        }
        catch (UsageException e)
        {
            error.WriteLine($"meshctl canary: {e.Message}");
            return BadInput;
        }
        catch (CanaryException e)
        {
            error.WriteLine($"meshctl canary: {e.Message}");
            return 1;
        }
        catch (InvalidOperationException e)
        {
            // The VirtualService has no split of the host between the subsets, or an unreadable state annotation.
            error.WriteLine($"meshctl canary: {e.Message}");
            return BadInput;
        }
        catch (Exception e) when (e is k8s.Autorest.HttpOperationException or HttpRequestException or k8s.Exceptions.KubeConfigException)
        {
            error.WriteLine($"meshctl canary: the Kubernetes API failed: {e.Message}");
            return 1;
        }
    }

    private static CanaryPlan ParsePlan(ParseResult r, CanaryTarget target)
    {
        var steps = new List<int>();
        foreach (var part in r.GetValue(Steps)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            steps.Add(int.TryParse(part.TrimEnd('%'), NumberStyles.Integer, CultureInfo.InvariantCulture, out var step)
                ? step : throw new UsageException($"--steps: '{part}' is not a whole percentage"));
        }
        var thresholds = new CanaryThresholds(
            Number(r.GetValue(MaxErrorRate)!, "--max-error-rate"),
            Duration(r.GetValue(MaxP95Latency)!, "--max-p95-latency"),
            r.GetValue(MaxTtftP95) is { } ttft ? Duration(ttft, "--max-ttft-p95") : null,
            long.TryParse(r.GetValue(MinRequests), NumberStyles.Integer, CultureInfo.InvariantCulture, out var min) ? min : throw new UsageException($"--min-requests: '{r.GetValue(MinRequests)}' is not a whole number"));
        var plan = new CanaryPlan(steps,
            Duration(r.GetValue(Pause)!, "--pause"),
            Duration(r.GetValue(Interval)!, "--interval"),
            r.GetValue(MaxWait) is { } maxWait ? Duration(maxWait, "--max-wait") : null,
            thresholds,
            r.GetValue(Sources)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            r.GetValue(CanaryDeployment) ?? $"{target.Service}-{target.Canary}");
        return plan.Validate() is { } problem ? throw new UsageException(problem) : plan;
    }

    private static PrometheusCanaryAnalyzer Analyzer(ParseResult r)
    {
        var url = r.GetValue(Prometheus) ?? throw new UsageException("--prometheus is required to analyse the canary (e.g. --prometheus http://prometheus.monitoring:9090)");
        if (!Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new UsageException($"--prometheus '{url}' is not an http(s) URL");
        }
        var queries = new CanaryQueries();
        foreach (var query in r.GetValue(Queries) ?? [])
        {
            var equals = query.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new UsageException($"--query '{query}' is not NAME=PROMQL");
            }
            try
            {
                queries.Set(query[..equals], query[(equals + 1)..]);
            }
            catch (ArgumentException e)
            {
                throw new UsageException("--query: " + e.Message[..e.Message.IndexOf(" (Parameter", StringComparison.Ordinal)]);
            }
        }
        // One client for the process: meshctl is short-lived, and the loop queries the same server.
        return new PrometheusCanaryAnalyzer(new PrometheusClient(new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(30) }), queries, TimeProvider.System);
    }

    private static double Number(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
            ? value : throw new UsageException($"{option}: '{text}' is not a number");

    /// <summary>A duration like 90s, 5m, 1h, 2.5s, 250ms.</summary>
    internal static TimeSpan Duration(string text, string option)
    {
        var units = new (string Suffix, double Seconds)[] { ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600) };
        foreach (var (suffix, seconds) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal) && !(suffix == "s" && text.EndsWith("ms", StringComparison.Ordinal))
                && double.TryParse(text[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number) && number >= 0)
            {
                return TimeSpan.FromSeconds(number * seconds);
            }
        }
        throw new UsageException($"{option}: '{text}' is not a duration (e.g. 30s, 5m, 1h, 250ms)");
    }

    private static string StatusText(CanaryState? state, (int Stable, int Canary) weights, CanaryTarget target, DateTimeOffset now)
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"VirtualService {target.Namespace}/{target.VirtualService}: {target.Stable} {weights.Stable}% / {target.Canary} {weights.Canary}%");
        if (state is null)
        {
            text.Append("no rollout recorded");
            return text.ToString();
        }
        text.AppendLine(CultureInfo.InvariantCulture, $"rollout of {state.Canary} (stable {state.Stable}): {state.Phase}");
        if (state.Phase == CanaryPhase.Progressing)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  step {state.StepIndex + 1} of {state.Steps.Count} ({string.Join(", ", state.Steps.Select(s => s + "%"))}): {state.CanaryWeight}% since {state.StepStartedAt:u} ({(now - state.StepStartedAt):hh\\:mm\\:ss} ago; pause {state.Pause:g})");
            if (weights.Canary != state.CanaryWeight)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  warning: the weights are not the {state.CanaryWeight}% meshctl set; the running meshctl will halt");
            }
        }
        if (state.Reason is { } reason)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  reason: {reason}");
        }
        if (state.LastAnalysis is { } analysis)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  last analysis {analysis.At:u}: {analysis.Verdict.ToString().ToLowerInvariant()}");
            foreach (var check in analysis.Checks)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"    {check.Outcome.ToString().ToLowerInvariant(),-7} {check.Describe()}");
            }
            if (analysis.Error is { } error)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"    queries failed: {error}");
            }
        }
        text.AppendLine("  history:");
        foreach (var e in state.History)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"    {e.At:u} {e.Event,-9} {e.CanaryWeight,3}%  {e.Message}");
        }
        return text.ToString().TrimEnd();
    }

    private static string StatusJson(CanaryState? state, (int Stable, int Canary) weights, CanaryTarget target) =>
        new JsonObject
        {
            ["virtualService"] = $"{target.Namespace}/{target.VirtualService}",
            ["weights"] = new JsonObject { [target.Stable] = weights.Stable, [target.Canary] = weights.Canary },
            ["rollout"] = state is null ? null : JsonNode.Parse(state.ToJson()),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>The analyzer of commands that never analyse (promote, abort, status, dry runs).</summary>
    private sealed class NoAnalysis : ICanaryAnalyzer
    {
        public static readonly NoAnalysis Instance = new();

        public Task<CanaryAnalysis> AnalyseAsync(CanaryAnalysisRequest request, CancellationToken cancellationToken) =>
            throw new UsageException("--prometheus is required to analyse the canary");
    }
}
