using System.Globalization;
using System.Text;

namespace InferenceServer.Perf;

/// <summary>
/// The raw decode loops' figures over the runs of <c>bench generate</c>: every configuration (loops x threads) at
/// every batch size, and the baseline the server is held to, the best cell of each run. The best is taken per run,
/// because every ratio to it is taken within a run.
/// </summary>
internal sealed class GenerateRawSweep(BenchResults results, IReadOnlyList<LoopSetting> settings, IReadOnlyList<int> batches, LoopSetting server, int runs)
{
    public LoopSetting Server => server;

    public IReadOnlyList<LoopSetting> Settings => settings;

    /// <summary>Tokens/s of one cell in one run.</summary>
    public double Rate(LoopSetting setting, int batch, int run) => results.Runs(GenerateBenchmark.RawCell(setting, batch))[run].SamplesPerSecond;

    /// <summary>The best batch size of one configuration in one run.</summary>
    public int BestBatch(LoopSetting setting, int run) => batches.MaxBy(b => Rate(setting, b, run));

    /// <summary>One configuration's best tokens/s in one run (the maximum over the batch sizes).</summary>
    public double Best(LoopSetting setting, int run) => Rate(setting, BestBatch(setting, run), run);

    /// <summary>The configuration whose best is the run's best.</summary>
    public LoopSetting BestSetting(int run) => settings.MaxBy(s => Best(s, run));

    /// <summary>The baseline of each run: the best tokens/s over every configuration and batch size.</summary>
    public double[] BestPerRun() => Enumerable.Range(0, runs).Select(run => Best(BestSetting(run), run)).ToArray();

    public string DescribeBest(int run) => $"{BestSetting(run)} batch {BestBatch(BestSetting(run), run)}";

    /// <summary>Two tables: every cell, then each configuration's best and how far it is from the run's best.</summary>
    public void AddTable()
    {
        var s = new StringBuilder();
        s.AppendLine("Raw decode loops, every cell (medians over the runs, tokens/s with (min–max); B = rows in flight over all loops, split evenly):").AppendLine();
        s.AppendLine("| loops x threads | B | rows per loop | tokens/s | step p50 ms | step p99 ms |");
        s.AppendLine("|---|--:|---|--:|--:|--:|");
        foreach (var setting in settings)
        {
            foreach (var b in batches)
            {
                var r = results.Runs(GenerateBenchmark.RawCell(setting, b));
                var perLoop = b / setting.Loops + (b % setting.Loops == 0 ? "" : $"–{b / setting.Loops + 1}");
                s.AppendLine(Invariant($"| {setting} | {b} | {perLoop} | {Spread(r.Select(m => m.SamplesPerSecond))} | {Median(r.Select(m => m.Percentile(50))):F3} | {Median(r.Select(m => m.Percentile(99))):F3} |"));
            }
        }
        s.AppendLine().AppendLine("Raw decode loops, each configuration's best over its batch sizes (per run, then median (min–max)); / best = the median of its per-run ratios to the run's best cell:").AppendLine();
        s.AppendLine("| loops x threads | best tokens/s per run | median (min–max) | at B | / best | |");
        s.AppendLine("|---|---|--:|---|--:|---|");
        var best = BestPerRun();
        foreach (var setting in settings)
        {
            var perRun = Enumerable.Range(0, runs).Select(run => Best(setting, run)).ToArray();
            var ratio = BenchResults.Median(perRun.Select((v, run) => v / best[run]));
            var marks = new List<string>();
            if (Enumerable.Range(0, runs).Count(run => BestSetting(run) == setting) is var wins and > 0)
            {
                marks.Add(wins == runs ? "**best**" : $"best in {wins} of {runs} runs");
            }
            if (setting == server)
            {
                marks.Add("the server's configuration");
            }
            s.AppendLine(Invariant($"| {setting} | {string.Join(" / ", perRun.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} | {Spread(perRun)} | {string.Join(" / ", Enumerable.Range(0, runs).Select(run => BestBatch(setting, run)))} | {BenchResults.Ratio(ratio)} | {string.Join("; ", marks)} |"));
        }
        s.AppendLine().Append("The baseline of the first check, per run: " + string.Join(" / ", best.Select(v => v.ToString("F0", CultureInfo.InvariantCulture))) +
            " tokens/s (" + string.Join(" / ", Enumerable.Range(0, runs).Select(DescribeBest)) + ").");
        results.Table(s.ToString());
    }

    /// <summary>"median (min–max)" of per-run figures.</summary>
    public static string Spread(IEnumerable<double> values)
    {
        var v = values.ToArray();
        return v.Length == 0 ? "n/a" : Invariant($"{BenchResults.Median(v):F0} ({v.Min():F0}–{v.Max():F0})");
    }

    private static double Median(IEnumerable<double> values) => BenchResults.Median(values);

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
