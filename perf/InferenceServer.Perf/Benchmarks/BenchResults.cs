using System.Globalization;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Perf;

/// <summary>What a cell measures: the engine in-process, the bare echo, or the server, over a protocol at a concurrency.</summary>
internal sealed record CellInfo(string Name, string Kind, string Protocol, int Concurrency, string Detail);

/// <summary>A target: a ratio computed within each run, its median over the runs, and whether the median meets the threshold.</summary>
internal sealed record Check(string Name, string Formula, IReadOnlyList<double> PerRun, double Threshold, bool AtLeast)
{
    public double Median => BenchResults.Median(PerRun);

    public bool Met => AtLeast ? Median >= Threshold : Median <= Threshold;

    public string Target => (AtLeast ? ">= " : "<= ") + Threshold.ToString("0.##", CultureInfo.InvariantCulture);
}

/// <summary>
/// One benchmark's results: every cell's per-run measurements and profiles, the checks against the targets, and notes.
/// Renders Markdown (medians over the runs) and JSON (everything, per run).
/// </summary>
internal sealed class BenchResults(string benchmark, string description)
{
    private readonly List<(CellInfo Info, List<Measurement> Runs, List<Profile> Profiles)> _cells = [];
    private readonly List<Check> _checks = [];
    private readonly List<string> _notes = [];
    private readonly List<string> _tables = [];

    public string Benchmark => benchmark;

    public void Add(CellInfo info, Measurement m, Profile profile)
    {
        var index = _cells.FindIndex(c => c.Info.Name == info.Name);
        if (index < 0)
        {
            _cells.Add((info, [], []));
            index = _cells.Count - 1;
        }
        _cells[index].Runs.Add(m);
        _cells[index].Profiles.Add(profile);
    }

    /// <summary>A cell's measurement in each run, in run order.</summary>
    public IReadOnlyList<Measurement> Runs(string cell) =>
        _cells.FirstOrDefault(c => c.Info.Name == cell).Runs ?? throw new KeyNotFoundException($"no cell '{cell}'");

    /// <summary>A cell's profile in each run, in run order.</summary>
    public IReadOnlyList<Profile> Profiles(string cell) =>
        _cells.FirstOrDefault(c => c.Info.Name == cell).Profiles ?? throw new KeyNotFoundException($"no cell '{cell}'");

    public bool Has(string cell) => _cells.Exists(c => c.Info.Name == cell);

    public Check AddCheck(string name, string formula, IEnumerable<double> perRun, double threshold, bool atLeast)
    {
        var check = new Check(name, formula, perRun.ToArray(), threshold, atLeast);
        _checks.Add(check);
        return check;
    }

    public void Note(string note) => _notes.Add(note);

    /// <summary>A benchmark's own summary table (Markdown), shown after the cells' table.</summary>
    public void Table(string markdown) => _tables.Add(markdown);

    public string ToMarkdown()
    {
        var s = new StringBuilder();
        s.AppendLine($"### bench {benchmark}").AppendLine().AppendLine(description).AppendLine();
        s.AppendLine("| cell | kind | protocol | concurrency | req/s | samples/s | p50 ms | p90 ms | p99 ms | max ms | errors |");
        s.AppendLine("|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
        foreach (var (info, runs, _) in _cells)
        {
            var errors = runs.SelectMany(r => r.ErrorsByStatus).GroupBy(e => e.Key).Select(g => $"{g.Key}={g.Sum(e => e.Value)}").ToArray();
            s.AppendLine(Invariant($"| {info.Name} | {info.Kind} | {info.Protocol} | {info.Concurrency} | {Rate(Median(runs.Select(r => r.RequestsPerSecond)))} | {Rate(Median(runs.Select(r => r.SamplesPerSecond)))} | {Ms(Median(runs.Select(r => r.Percentile(50))))} | {Ms(Median(runs.Select(r => r.Percentile(90))))} | {Ms(Median(runs.Select(r => r.Percentile(99))))} | {Ms(Median(runs.Select(r => r.MaxMs)))} | {(errors.Length == 0 ? "0" : string.Join(", ", errors))} |"));
        }
        s.AppendLine().AppendLine("Medians over the runs (max ms: median of the runs' maxima); errors summed over the runs, by status.").AppendLine();
        foreach (var table in _tables)
        {
            s.AppendLine(table.TrimEnd()).AppendLine();
        }
        if (_checks.Count > 0)
        {
            s.AppendLine("| target | ratio | per run | median | target | result |");
            s.AppendLine("|---|---|---|--:|--:|---|");
            foreach (var c in _checks)
            {
                s.AppendLine(Invariant($"| {c.Name} | {c.Formula} | {string.Join(" / ", c.PerRun.Select(Ratio))} | {Ratio(c.Median)} | {c.Target} | {(c.Met ? "met" : "**missed**")} |"));
            }
            s.AppendLine();
        }
        s.AppendLine("Profile per cell and run (CPU from /proc; server cells add the model's statistics over the cell):").AppendLine();
        foreach (var (info, _, profiles) in _cells)
        {
            s.AppendLine($"- {info.Name} ({info.Detail}):");
            for (var i = 0; i < profiles.Count; i++)
            {
                s.AppendLine($"  - run {i + 1}: {profiles[i]}");
            }
        }
        foreach (var note in _notes)
        {
            s.AppendLine().AppendLine(note);
        }
        return s.ToString();
    }

    public void WriteJson(string path, object context)
    {
        var document = new
        {
            benchmark,
            description,
            context,
            cells = _cells.Select(c => new
            {
                c.Info.Name,
                c.Info.Kind,
                c.Info.Protocol,
                c.Info.Concurrency,
                c.Info.Detail,
                median = new
                {
                    requests_per_second = Median(c.Runs.Select(r => r.RequestsPerSecond)),
                    samples_per_second = Median(c.Runs.Select(r => r.SamplesPerSecond)),
                    p50_ms = Median(c.Runs.Select(r => r.Percentile(50))),
                    p90_ms = Median(c.Runs.Select(r => r.Percentile(90))),
                    p99_ms = Median(c.Runs.Select(r => r.Percentile(99))),
                    max_ms = Median(c.Runs.Select(r => r.MaxMs)),
                },
                runs = c.Runs.Select((r, i) => new
                {
                    requests = r.Requests,
                    seconds = r.Seconds,
                    rows_per_request = r.RowsPerRequest,
                    requests_per_second = r.RequestsPerSecond,
                    samples_per_second = r.SamplesPerSecond,
                    p50_ms = r.Percentile(50),
                    p90_ms = r.Percentile(90),
                    p99_ms = r.Percentile(99),
                    max_ms = r.MaxMs,
                    errors = r.Errors,
                    errors_by_status = r.ErrorsByStatus,
                    first_error = r.FirstError,
                    generation = r.Samples is null ? null : new
                    {
                        tokens = r.Samples,
                        tokens_per_second = r.SamplesPerSecond,
                        time_per_output_token_p50_ms = Measurement.Percentile(r.TimePerOutputTokenMs, 50),
                        time_per_output_token_p90_ms = Measurement.Percentile(r.TimePerOutputTokenMs, 90),
                    },
                    profile = c.Profiles[i],
                }),
            }),
            checks = _checks.Select(c => new { c.Name, c.Formula, per_run = c.PerRun, median = c.Median, target = c.Target, met = c.Met }),
            tables = _tables,
            notes = _notes,
        };
        // The README's commands write to perf/results/, which git ignores and a fresh checkout does not have.
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder)
        {
            Directory.CreateDirectory(folder);
        }
        File.WriteAllText(path, JsonSerializer.Serialize(document, JsonOptions));
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static string Ratio(double v) => double.IsNaN(v) ? "n/a" : v.ToString(v < 0.1 ? "F3" : "F2", CultureInfo.InvariantCulture);

    private static string Rate(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F0", CultureInfo.InvariantCulture);

    private static string Ms(double v) => double.IsNaN(v) ? "n/a" : v.ToString(v < 1 ? "F3" : "F2", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
