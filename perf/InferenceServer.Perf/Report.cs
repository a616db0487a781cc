using System.Globalization;
using System.Text;

namespace InferenceServer.Perf;

/// <summary>Collects every run's measurements and renders the medians as Markdown.</summary>
internal sealed class Report(string title, IReadOnlyList<string> protocols, IReadOnlyList<int> concurrency)
{
    private readonly Dictionary<(string Protocol, int Concurrency), List<Measurement>> _server = [];
    private readonly Dictionary<int, List<Measurement>> _engine = [];

    /// <summary>Adds one run's server measurement; call once per run, in run order.</summary>
    public void AddServer(string protocol, int clients, Measurement m) => Add(_server, (protocol, clients), m);

    /// <summary>Adds one run's engine measurement; call once per run, in run order.</summary>
    public void AddEngine(int clients, Measurement m) => Add(_engine, clients, m);

    public string ToMarkdown()
    {
        var s = new StringBuilder();
        s.AppendLine(title).AppendLine();
        s.AppendLine("| protocol | concurrency | req/s | p50 ms | p90 ms | p99 ms | errors | engine req/s | server/engine |");
        s.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var protocol in protocols)
        {
            foreach (var c in concurrency)
            {
                if (!_server.TryGetValue((protocol, c), out var runs))
                {
                    continue;
                }
                var engine = _engine.GetValueOrDefault(c);
                // The ratio is taken within each run (server and engine measured minutes apart at most), then the median.
                var ratio = engine is null ? double.NaN : Median(runs.Zip(engine, (server, e) => server.RequestsPerSecond / e.RequestsPerSecond));
                s.AppendLine(Invariant($"| {protocol} | {c} | {Rate(Median(runs.Select(r => r.RequestsPerSecond)))} | {Ms(Median(runs.Select(r => r.Percentile(50))))} | {Ms(Median(runs.Select(r => r.Percentile(90))))} | {Ms(Median(runs.Select(r => r.Percentile(99))))} | {runs.Sum(r => r.Errors)} | {(engine is null ? "n/a" : Rate(Median(engine.Select(e => e.RequestsPerSecond))))} | {(double.IsNaN(ratio) ? "n/a" : ratio.ToString(ratio < 0.1 ? "F4" : "F2", CultureInfo.InvariantCulture))} |"));
            }
        }
        if (_engine.Count > 0)
        {
            s.AppendLine().AppendLine("Engine baseline (ONNX Runtime in-process, one thread per client):").AppendLine();
            s.AppendLine("| concurrency | engine req/s | engine p50 ms | engine p90 ms | engine p99 ms | errors |");
            s.AppendLine("|--:|--:|--:|--:|--:|--:|");
            foreach (var c in concurrency.Where(_engine.ContainsKey))
            {
                var runs = _engine[c];
                s.AppendLine(Invariant($"| {c} | {Rate(Median(runs.Select(r => r.RequestsPerSecond)))} | {Ms(Median(runs.Select(r => r.Percentile(50))))} | {Ms(Median(runs.Select(r => r.Percentile(90))))} | {Ms(Median(runs.Select(r => r.Percentile(99))))} | {runs.Sum(r => r.Errors)} |"));
            }
        }
        s.AppendLine().AppendLine("Figures are medians over the runs; errors are summed over the runs; server/engine is the median of the per-run throughput ratios.");
        return s.ToString();
    }

    public static string Rate(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F0", CultureInfo.InvariantCulture);

    public static string Ms(double v) => double.IsNaN(v) ? "n/a" : v.ToString(v < 1 ? "F3" : "F2", CultureInfo.InvariantCulture);

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

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
