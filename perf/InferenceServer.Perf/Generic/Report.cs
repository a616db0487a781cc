using System.Globalization;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Perf;

/// <summary>Collects every run's measurements and renders the medians as Markdown (and every run as JSON).</summary>
internal sealed class Report(string title, IReadOnlyList<string> protocols, IReadOnlyList<LoadShape> loads)
{
    private readonly Dictionary<(string Protocol, LoadShape Load), List<Measurement>> _server = [];
    private readonly Dictionary<int, List<Measurement>> _engine = [];

    /// <summary>Adds one run's server measurement; call once per run, in run order.</summary>
    public void AddServer(string protocol, LoadShape load, Measurement m) => Add(_server, (protocol, load), m);

    /// <summary>Adds one run's engine measurement; call once per run, in run order.</summary>
    public void AddEngine(int clients, Measurement m) => Add(_engine, clients, m);

    public string ToMarkdown()
    {
        var s = new StringBuilder();
        s.AppendLine(title).AppendLine();
        s.AppendLine("| protocol | load | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | engine req/s | server/engine |");
        s.AppendLine("|---|---|--:|--:|--:|--:|--:|---|--:|--:|");
        foreach (var protocol in protocols)
        {
            foreach (var load in loads)
            {
                if (!_server.TryGetValue((protocol, load), out var runs))
                {
                    continue;
                }
                // Open-loop cells have no engine counterpart; closed-loop cells compare with the engine at the same concurrency.
                var engine = load.Rate is null ? _engine.GetValueOrDefault(load.Concurrency) : null;
                // The ratio is taken within each run (server and engine measured minutes apart at most), then the median.
                var ratio = engine is null ? double.NaN : Median(runs.Zip(engine, (server, e) => server.RequestsPerSecond / e.RequestsPerSecond));
                s.AppendLine(Invariant($"| {protocol} | {load} | {Rate(Median(runs.Select(r => r.RequestsPerSecond)))} | {Ms(Median(runs.Select(r => r.Percentile(50))))} | {Ms(Median(runs.Select(r => r.Percentile(90))))} | {Ms(Median(runs.Select(r => r.Percentile(99))))} | {Ms(Median(runs.Select(r => r.MaxMs)))} | {Errors(runs)} | {(engine is null ? "n/a" : Rate(Median(engine.Select(e => e.RequestsPerSecond))))} | {(double.IsNaN(ratio) ? "n/a" : ratio.ToString(ratio < 0.1 ? "F4" : "F2", CultureInfo.InvariantCulture))} |"));
            }
        }
        if (_engine.Count > 0)
        {
            s.AppendLine().AppendLine("Engine baseline (ONNX Runtime in-process, one thread per client):").AppendLine();
            s.AppendLine("| concurrency | engine req/s | engine p50 ms | engine p90 ms | engine p99 ms | max ms | errors |");
            s.AppendLine("|--:|--:|--:|--:|--:|--:|---|");
            foreach (var c in loads.Where(l => l.Rate is null).Select(l => l.Concurrency).Where(_engine.ContainsKey))
            {
                var runs = _engine[c];
                s.AppendLine(Invariant($"| {c} | {Rate(Median(runs.Select(r => r.RequestsPerSecond)))} | {Ms(Median(runs.Select(r => r.Percentile(50))))} | {Ms(Median(runs.Select(r => r.Percentile(90))))} | {Ms(Median(runs.Select(r => r.Percentile(99))))} | {Ms(Median(runs.Select(r => r.MaxMs)))} | {Errors(runs)} |"));
            }
        }
        s.AppendLine().AppendLine("Figures are medians over the runs (max: the median of the runs' maxima); errors are summed over the runs, by status; server/engine is the median of the per-run throughput ratios. " +
            "Open-loop cells (rate=R) measure latency from the time each request was due.");
        return s.ToString();
    }

    /// <summary>Every run of every cell, and the medians, as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        title,
        server = _server.Select(kv => new { protocol = kv.Key.Protocol, load = kv.Key.Load.ToString(), runs = kv.Value.Select(Run) }),
        engine = _engine.Select(kv => new { concurrency = kv.Key, runs = kv.Value.Select(Run) }),
    }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });

    private static object Run(Measurement m) => new
    {
        requests = m.Requests,
        seconds = m.Seconds,
        requests_per_second = m.RequestsPerSecond,
        p50_ms = m.Percentile(50),
        p90_ms = m.Percentile(90),
        p99_ms = m.Percentile(99),
        max_ms = m.MaxMs,
        errors = m.Errors,
        errors_by_status = m.ErrorsByStatus,
        first_error = m.FirstError,
    };

    private static string Errors(IEnumerable<Measurement> runs)
    {
        var byStatus = runs.SelectMany(r => r.ErrorsByStatus).GroupBy(e => e.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={g.Sum(e => e.Value)}").ToArray();
        return byStatus.Length == 0 ? "0" : string.Join(", ", byStatus);
    }

    public static string Rate(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F0", CultureInfo.InvariantCulture);

    public static string Ms(double v) => double.IsNaN(v) ? "n/a" : v.ToString(v < 1 ? "F3" : "F2", CultureInfo.InvariantCulture);

    public static double Median(IEnumerable<double> values) => BenchResults.Median(values);

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static void Add<TKey>(Dictionary<TKey, List<Measurement>> map, TKey key, Measurement m)
        where TKey : notnull
    {
        if (!map.TryGetValue(key, out var list))
        {
            map[key] = list = [];
        }
        list.Add(m);
    }
}

/// <summary>A cell's load: a closed loop of N clients, or an open loop at a fixed rate.</summary>
internal sealed record LoadShape(int Concurrency, double? Rate)
{
    public override string ToString() => Rate is { } r ? $"rate={r.ToString("0.##", CultureInfo.InvariantCulture)}/s" : $"c={Concurrency}";
}
