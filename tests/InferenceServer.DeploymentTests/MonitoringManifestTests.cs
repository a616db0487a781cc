using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Http;
using InferenceServer.Observability;
using InferenceServer.Tests.Infrastructure;
using Prometheus;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// k8s/monitoring: the PrometheusRule and the Grafana dashboard use metric and label names the server really exports
/// (a running server's /metrics, and ServerMetrics for the GPU and generation metrics a CPU test server lacks), their
/// PromQL parses (promtool), and the dashboard is a well-formed Grafana dashboard the sidecar picks up.
/// </summary>
public sealed class MonitoringManifestTests
{
    /// <summary>Labels Prometheus attaches to every scraped series (kubernetes-pods job), not the server.</summary>
    private static readonly HashSet<string> TargetLabels = ["namespace", "pod", "job", "instance", "container"];

    /// <summary>Istio's standard metric and the labels the expressions may use (Istio's standard labels).</summary>
    private static readonly Dictionary<string, HashSet<string>> IstioMetrics = new()
    {
        ["istio_requests_total"] =
        [
            "reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
            "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
            "destination_service", "destination_service_name", "destination_service_namespace", "request_protocol", "response_code",
            "grpc_response_status", "response_flags", "connection_security_policy", "destination_canonical_service", "destination_canonical_revision",
        ],
    };

    /// <summary>Label values the server produces (README "Metrics"), for matchers on those labels.</summary>
    private static readonly Dictionary<string, HashSet<string>> KnownValues = new()
    {
        ["outcome"] = ["success", "failure"],
        ["status"] = ["OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "CANCELLED", "UNAVAILABLE", "INTERNAL", "FAILED_PRECONDITION"],
        ["reason"] = ["queue_full", "deadline", "drain", "rate_limit", "concurrency", "circuit_open"],
        ["finish_reason"] = ["stop", "length", "cancelled", "error"],
    };

    private static readonly Dictionary<string, HashSet<string>> StateValues = new()
    {
        ["inference_model_state"] = ["LOADING", "READY", "UNAVAILABLE", "UNLOADING"],
        ["inference_circuit_breaker_state"] = ["CLOSED", "OPEN", "HALF_OPEN"],
    };

    private static readonly string[] Keywords = ["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"];

    private static string Folder => Path.Combine(Manifests.K8s, "monitoring");

    private static readonly Lazy<IReadOnlyList<Manifest>> RenderedOnce = new(() => Manifests.Parse(Manifests.Kustomize(Folder), "k8s/monitoring (rendered)"));

    /// <summary>k8s/monitoring as kubectl kustomize renders it (the PrometheusRule and the dashboard ConfigMap).</summary>
    private static IReadOnlyList<Manifest> Rendered => RenderedOnce.Value;

    /// <summary>Every metric ServerMetrics declares (GPU gauges included): name, type, label names.</summary>
    internal static IReadOnlyDictionary<string, (string Type, string[] Labels)> DeclaredMetrics()
    {
        var metrics = new ServerMetrics();
        var collectors = typeof(ServerMetrics).GetProperties().Select(p => p.GetValue(metrics))
            .Concat(typeof(GpuGauges).GetProperties().Select(p => p.GetValue(metrics.CreateGpuGauges())))
            .OfType<Collector>();
        return collectors.ToDictionary(c => c.Name, c => (c switch { Histogram => "histogram", Counter => "counter", _ => "gauge" }, c.LabelNames));
    }

    [Fact]
    public async Task Every_metric_and_label_the_rules_and_the_dashboard_use_is_one_the_server_exports()
    {
        // What a real server exports after one request, by family (# TYPE lines).
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        var data = string.Join(",", Enumerable.Range(0, 16));
        var body = $$"""{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[{{data}}]},{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[{{data}}]}]}""";
        (await server.Http.PostAsync("/v2/models/simple/infer", new StringContent(body, Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        using var admin = server.NewMetricsClient();
        var exposition = await admin.GetStringAsync(MetricsEndpoint.Path);
        var scraped = Regex.Matches(exposition, @"^# TYPE (\S+) (\S+)$", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var declared = DeclaredMetrics();
        // The two sources agree: what the server exports about its models is what ServerMetrics declares.
        foreach (var name in new[] { "inference_requests_total", "inference_request_duration_seconds", "inference_queue_duration_seconds", "inference_compute_duration_seconds", "inference_batch_size", "inference_model_state", "inference_requests_in_flight", "inference_queue_depth", "inference_server_drain_phase" })
        {
            Assert.True(scraped.TryGetValue(name, out var type) && declared.TryGetValue(name, out var d) && d.Type == type,
                $"{name} is not exported as ServerMetrics declares it (scrape: {(scraped.TryGetValue(name, out var t) ? t : "absent")})");
        }

        var failures = new List<string>();
        var used = new HashSet<string>();
        foreach (var (where, expr) in RuleExpressions().Concat(DashboardExpressions()))
        {
            if (Unbalanced(expr) is { } problem)
            {
                failures.Add($"{where}: {problem} in {expr}");
            }
            foreach (var (metric, matchers) in Selectors(expr))
            {
                used.Add(metric);
                HashSet<string> labels;
                if (IstioMetrics.TryGetValue(metric, out var istio))
                {
                    labels = istio;
                }
                else if (Resolve(metric, scraped, declared) is { } family)
                {
                    labels = [.. family.Labels, .. TargetLabels];
                    if (family.Histogram && metric.EndsWith("_bucket", StringComparison.Ordinal))
                    {
                        labels.Add("le");
                    }
                }
                else
                {
                    failures.Add($"{where}: metric {metric} is neither exported by the server (/metrics, ServerMetrics) nor an allow-listed Istio metric");
                    continue;
                }
                foreach (var (label, op, value) in matchers)
                {
                    if (!labels.Contains(label))
                    {
                        failures.Add($"{where}: {metric} has no label {label} (it has {string.Join(", ", labels.Order())})");
                    }
                    var known = label == "state" && StateValues.TryGetValue(metric, out var states) ? states : KnownValues.GetValueOrDefault(label);
                    if (known is not null && !op.Contains('!'))
                    {
                        var values = op == "=~" ? value.Split('|') : [value];
                        foreach (var v in values.Where(v => !known.Contains(v)))
                        {
                            failures.Add($"{where}: {metric}{{{label}{op}\"{value}\"}}: the server never sets {label}=\"{v}\" (it sets {string.Join(", ", known)})");
                        }
                    }
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // The dashboard covers what the issue asks for.
        foreach (var metric in new[]
        {
            "inference_requests_total", "inference_request_duration_seconds_bucket", "inference_queue_duration_seconds_bucket",
            "inference_compute_duration_seconds_bucket", "inference_batch_size_bucket", "inference_queue_depth", "inference_requests_in_flight",
            "inference_rejections_total", "inference_generation_tokens_total", "inference_time_to_first_token_seconds_bucket",
            "inference_time_per_output_token_seconds_bucket", "inference_gpu_utilization_ratio", "inference_gpu_memory_used_bytes",
            "istio_requests_total",
        })
        {
            Assert.True(DashboardExpressions().Any(e => Selectors(e.Expr).Any(s => s.Metric == metric)), $"k8s/monitoring/inference-dashboard.json: no panel shows {metric}");
        }
    }

    [Fact]
    public void The_metric_name_check_catches_a_wrong_name_and_a_wrong_label()
    {
        var declared = DeclaredMetrics();
        var selectors = Selectors("sum by (model) (rate(inference_request_total{outcome=\"failure\"}[5m])) / on (model) inference_queue_depth{modle=\"x\"}").ToList();
        Assert.Equal(["inference_request_total", "inference_queue_depth"], selectors.Select(s => s.Metric));
        Assert.Null(Resolve("inference_request_total", new Dictionary<string, string>(), declared));
        Assert.DoesNotContain("modle", Resolve("inference_queue_depth", new Dictionary<string, string>(), declared)!.Value.Labels);
        Assert.NotNull(Unbalanced("sum(rate(x[5m])"));
    }

    [Fact]
    public void The_prometheus_rule_alerts_on_error_rate_and_p95_latency_and_promtool_accepts_it()
    {
        var rule = Rendered.Single(d => d.Kind == "PrometheusRule");
        Assert.Equal("monitoring.coreos.com/v1", rule.ApiVersion);
        Assert.Equal("inference", rule.Namespace);
        Assert.Equal(["groups"], rule.Spec.Select(kv => kv.Key));
        var alerts = new List<(string Name, string Expr)>();
        string[] allowed = ["alert", "expr", "for", "keep_firing_for", "labels", "annotations"];
        foreach (var group in rule.Spec["groups"]!.AsArray())
        {
            Assert.Equal(["name", "rules"], group!.AsObject().Select(kv => kv.Key).Order(StringComparer.Ordinal));
            foreach (var r in group["rules"]!.AsArray())
            {
                var alert = (string?)r!["alert"] ?? throw new Xunit.Sdk.XunitException($"{rule}: a rule of group {group["name"]} has no alert name");
                var unknown = r.AsObject().Select(kv => kv.Key).Except(allowed).ToList();
                Assert.True(unknown.Count == 0, $"{rule}: alert {alert} has unknown fields {string.Join(", ", unknown)}");
                Assert.True(r["labels"]?["severity"] is JsonValue s && (string?)s is "critical" or "warning", $"{rule}: alert {alert} needs labels.severity critical or warning");
                Assert.True(r["annotations"]?["summary"] is not null && r["annotations"]?["description"] is not null, $"{rule}: alert {alert} needs a summary and a description");
                Assert.True(r["for"] is not null, $"{rule}: alert {alert} has no for: (one bad scrape would page)");
                alerts.Add((alert, (string)r["expr"]!));
            }
        }
        Assert.Equal(alerts.Count, alerts.Select(a => a.Name).Distinct().Count());
        Assert.True(alerts.Any(a => Selectors(a.Expr).Any(s => s.Metric == "inference_requests_total") && Regex.IsMatch(a.Expr, @"\)\s*>\s*0\.05\b")),
            $"{rule}: no alert on an error ratio of inference_requests_total over 0.05");
        Assert.True(alerts.Any(a => Selectors(a.Expr).Any(s => s.Metric == "istio_requests_total") && Regex.IsMatch(a.Expr, @"\)\s*>\s*0\.05\b")),
            $"{rule}: no alert on an error ratio of istio_requests_total over 0.05");
        Assert.True(alerts.Any(a => a.Expr.Contains("histogram_quantile(0.95", StringComparison.Ordinal)
            && Selectors(a.Expr).Any(s => s.Metric == "inference_request_duration_seconds_bucket")),
            $"{rule}: no alert on the p95 of inference_request_duration_seconds");

        // The real parser: promtool (Debian's prometheus package; .ci/run installs it).
        var file = Path.Combine(Paths.NewTempDirectory("rules"), "rules.yaml");
        File.WriteAllText(file, new JsonObject { ["groups"] = rule.Spec["groups"]!.DeepClone() }.ToJsonString());
        var (code, output) = Promtool("check", "rules", file);
        Assert.True(code == 0, $"{rule}: promtool check rules failed:\n{output}");
    }

    [Fact]
    public void Promtool_parses_every_dashboard_query()
    {
        // Grafana's variables replaced by values they take, each query as a recording rule promtool parses.
        var rules = new JsonArray();
        foreach (var (where, expr) in DashboardExpressions())
        {
            var promql = expr.Replace("$__rate_interval", "5m", StringComparison.Ordinal).Replace("$namespace", ".*", StringComparison.Ordinal).Replace("$model", ".*", StringComparison.Ordinal);
            Assert.DoesNotContain("$", promql);
            rules.Add(new JsonObject { ["record"] = $"dashboard:query_{rules.Count}", ["expr"] = promql, ["labels"] = new JsonObject { ["panel"] = where } });
        }
        var file = Path.Combine(Paths.NewTempDirectory("dashboard"), "queries.yaml");
        File.WriteAllText(file, new JsonObject { ["groups"] = new JsonArray(new JsonObject { ["name"] = "dashboard", ["rules"] = rules }) }.ToJsonString());
        var (code, output) = Promtool("check", "rules", file);
        var names = string.Join("\n", DashboardExpressions().Select((e, i) => $"dashboard:query_{i} = {e.Where}"));
        Assert.True(code == 0, $"k8s/monitoring/inference-dashboard.json: promtool does not parse a query:\n{output}\n{names}");
    }

    [Fact]
    public void The_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_that_the_sidecar_picks_up()
    {
        var configMap = Rendered.Single(d => d.Kind == "ConfigMap" && d.Name == "inference-dashboard");
        Assert.True((string?)configMap.Body["metadata"]?["labels"]?["grafana_dashboard"] == "1", $"{configMap}: label grafana_dashboard: \"1\" is missing (the Grafana sidecar selects by it)");
        var text = (string?)configMap.Body["data"]?["inference-dashboard.json"] ?? throw new Xunit.Sdk.XunitException($"{configMap}: no data key inference-dashboard.json");
        Assert.Equal(File.ReadAllText(Path.Combine(Folder, "inference-dashboard.json")), text);
        var dashboard = Dashboard();
        Assert.True((int)dashboard["schemaVersion"]! >= 36, "inference-dashboard.json: schemaVersion is older than Grafana 9");
        var variables = dashboard["templating"]!["list"]!.AsArray();
        Assert.Contains(variables, v => (string?)v!["name"] == "datasource" && (string?)v["type"] == "datasource" && (string?)v["query"] == "prometheus");
        var panels = dashboard["panels"]!.AsArray().Select(p => p!.AsObject()).ToList();
        Assert.Equal(panels.Count, panels.Select(p => (int)p["id"]!).Distinct().Count());
        foreach (var panel in panels.Where(p => (string?)p["type"] != "row"))
        {
            var where = $"inference-dashboard.json panel '{panel["title"]}'";
            Assert.True((string?)panel["datasource"]?["uid"] == "${datasource}" && (string?)panel["datasource"]?["type"] == "prometheus", $"{where}: datasource must be the ${{datasource}} Prometheus variable");
            var targets = panel["targets"]?.AsArray() ?? [];
            Assert.True(targets.Count > 0, $"{where}: no targets");
            Assert.All(targets, t => Assert.True(!string.IsNullOrWhiteSpace((string?)t!["expr"]) && (string?)t["datasource"]?["uid"] == "${datasource}", $"{where}: a target without expr or datasource"));
            Assert.Equal(targets.Count, targets.Select(t => (string?)t!["refId"]).Distinct().Count());
            Assert.NotNull(panel["gridPos"]);
        }
    }

    // ---- PromQL, roughly: enough to find every selector and its matchers ----

    private static readonly Regex MatcherPattern = new(@"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""((?:[^""\\]|\\.)*)""", RegexOptions.Compiled);

    /// <summary>Every metric selector of an expression, with its label matchers.</summary>
    internal static IEnumerable<(string Metric, List<(string Label, string Op, string Value)> Matchers)> Selectors(string expr)
    {
        // Label lists of by/without/on/ignoring/group_* and range or subquery brackets are no selectors.
        var text = Regex.Replace(expr, @"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ");
        text = Regex.Replace(text, @"\[[^\]]*\]", " ");
        var braces = new List<string>();
        text = Regex.Replace(text, @"\{[^}]*\}", m => { braces.Add(m.Value); return $"\u0001{braces.Count - 1}\u0002"; });
        foreach (Match m in Regex.Matches(text, @"(?<![\w.:\u0001])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\u0001(\d+)\u0002)?(\s*\()?"))
        {
            var name = m.Groups[1].Value;
            if (m.Groups[4].Success || Keywords.Contains(name) || Regex.IsMatch(name, "^(inf|nan)$", RegexOptions.IgnoreCase))
            {
                continue; // a function or an aggregation, or a keyword
            }
            var matchers = m.Groups[3].Success
                ? MatcherPattern.Matches(braces[int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture)]).Select(x => (x.Groups[1].Value, x.Groups[2].Value, x.Groups[3].Value)).ToList()
                : [];
            yield return (name, matchers);
        }
    }

    /// <summary>A metric name as a family the server exports: a name, or a histogram's _bucket/_sum/_count.</summary>
    private static (string[] Labels, bool Histogram)? Resolve(string metric, IReadOnlyDictionary<string, string> scraped, IReadOnlyDictionary<string, (string Type, string[] Labels)> declared)
    {
        foreach (var (family, histogram) in new[] { (metric, false) }.Concat(new[] { "_bucket", "_sum", "_count" }.Where(metric.EndsWith).Select(s => (metric[..^s.Length], true))))
        {
            if (declared.TryGetValue(family, out var d) && (!histogram || d.Type == "histogram"))
            {
                return (d.Labels, histogram);
            }
            if (scraped.TryGetValue(family, out var type) && (!histogram || type == "histogram"))
            {
                return ([], histogram);
            }
        }
        return null;
    }

    private static string? Unbalanced(string expr)
    {
        var stack = new Stack<char>();
        var inString = false;
        for (var i = 0; i < expr.Length; i++)
        {
            var c = expr[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }
                continue;
            }
            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '(' or '[' or '{':
                    stack.Push(c);
                    break;
                case ')' or ']' or '}':
                    var open = c == ')' ? '(' : c == ']' ? '[' : '{';
                    if (stack.Count == 0 || stack.Pop() != open)
                    {
                        return $"unbalanced '{c}' at {i}";
                    }
                    break;
            }
        }
        return inString ? "an unterminated string" : stack.Count > 0 ? $"unclosed '{stack.Peek()}'" : null;
    }

    private static JsonObject Dashboard() => JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "inference-dashboard.json")))!.AsObject();

    private static IEnumerable<(string Where, string Expr)> RuleExpressions() =>
        Rendered.Where(d => d.Kind == "PrometheusRule")
            .SelectMany(d => d.Spec["groups"]!.AsArray().SelectMany(g => g!["rules"]!.AsArray())
                .Select(r => ($"{d} alert {(string?)r!["alert"] ?? (string?)r["record"]}", (string)r["expr"]!)));

    private static IEnumerable<(string Where, string Expr)> DashboardExpressions() =>
        Dashboard()["panels"]!.AsArray().Where(p => p!["targets"] is JsonArray)
            .SelectMany(p => p!["targets"]!.AsArray().Select(t => ($"inference-dashboard.json panel '{p["title"]}' target {t!["refId"]}", (string)t["expr"]!)));

    private static (int Code, string Output) Promtool(params string[] args)
    {
        var start = SystemProcess.StartInfo("promtool", args);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"promtool is not installed (Debian: apt-get install prometheus); it is the PromQL parser these checks rely on: {e.Message}");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
    }
}
