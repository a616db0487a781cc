using System.Globalization;
using System.Text;

namespace InferenceServer.Perf;

/// <summary>
/// The A/B and client cross-check tables of <c>bench overhead</c> and <c>bench payload</c>: per-run ratios between two
/// cells measured seconds apart in the same run, with their median and spread (min–max and the interquartile range),
/// so that a difference between two builds or two clients can be set against the run's own noise.
/// </summary>
internal static class Comparison
{
    /// <summary>The sides in run <paramref name="run"/>'s order: as given in odd runs, reversed in even ones (A/B, B/A, ...), so neither always goes first.</summary>
    public static IReadOnlyList<ServerSide> Order(IReadOnlyList<ServerSide> sides, int run) => run % 2 == 1 ? sides : sides.Reverse().ToArray();

    /// <summary>A server side's cell name: the plain name for a single server (as before), prefixed by the side otherwise.</summary>
    public static string Name(ServerSide side, string rest) => side.Name == "server" ? rest : $"{side.Name} {rest}";

    /// <summary>"median (min–max; IQR q1–q3; n runs)".</summary>
    public static string Spread(IReadOnlyList<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).Order().ToArray();
        if (v.Length == 0)
        {
            return "n/a";
        }
        return Invariant($"**{BenchResults.Ratio(BenchResults.Median(v))}** ({BenchResults.Ratio(v[0])}–{BenchResults.Ratio(v[^1])}; IQR {BenchResults.Ratio(Quantile(v, 0.25))}–{BenchResults.Ratio(Quantile(v, 0.75))})");
    }

    /// <summary>Linear-interpolated quantile of sorted values.</summary>
    public static double Quantile(double[] sorted, double q)
    {
        var pos = q * (sorted.Length - 1);
        var lo = (int)Math.Floor(pos);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    /// <summary>
    /// A table of cell pairs (a, b): each one's median metric over the runs and the per-run ratio b/a (median, spread).
    /// <paramref name="rows"/>: a label and the two cells' names.
    /// </summary>
    public static string Table(BenchResults results, string title, string aLabel, string bLabel, string metric, Func<Measurement, double> value,
        IEnumerable<(string Label, string A, string B)> rows)
    {
        var s = new StringBuilder();
        s.AppendLine(title).AppendLine();
        s.AppendLine($"| cell | {aLabel} {metric} (median) | {bLabel} {metric} (median) | {bLabel} / {aLabel} per run | median (min–max; IQR) |");
        s.AppendLine("|---|--:|--:|---|---|");
        foreach (var (label, a, b) in rows)
        {
            if (!results.Has(a) || !results.Has(b))
            {
                continue;
            }
            var ra = results.Runs(a);
            var rb = results.Runs(b);
            var ratios = ra.Zip(rb, (x, y) => value(y) / value(x)).ToArray();
            s.AppendLine(Invariant($"| {label} | {Format(BenchResults.Median(ra.Select(value)))} | {Format(BenchResults.Median(rb.Select(value)))} | {string.Join(" / ", ratios.Select(BenchResults.Ratio))} | {Spread(ratios)} |"));
        }
        return s.ToString();
    }

    private static string Format(double v) => double.IsNaN(v) ? "n/a" : v.ToString(v < 10 ? "F3" : "F0", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
