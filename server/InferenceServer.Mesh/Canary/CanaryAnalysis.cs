using System.Globalization;

namespace InferenceServer.Mesh.Canary;

/// <summary>How one check of an analysis came out.</summary>
public enum CheckOutcome
{
    /// <summary>Within its threshold (for a request count: at least the minimum).</summary>
    Passed,

    /// <summary>Over its threshold: the canary is rolled back.</summary>
    Failed,

    /// <summary>No data, or too few requests to judge: the step waits.</summary>
    NoData,
}

/// <summary>The verdict of one analysis.</summary>
public enum AnalysisVerdict
{
    /// <summary>Every check had data and passed.</summary>
    Passed,

    /// <summary>Some check broke its threshold.</summary>
    Failed,

    /// <summary>Nothing failed, but some check had no data or too few requests.</summary>
    Inconclusive,
}

/// <summary>One check: its name (e.g. "server error rate"), the measured value (null: no data), the threshold, the
/// outcome, and the unit values are shown in ("ratio", "seconds", "requests").</summary>
public sealed record CanaryCheck(string Name, double? Value, double Threshold, CheckOutcome Outcome, string Unit)
{
    /// <summary>E.g. "server error rate 12.5% > max 5%".</summary>
    public string Describe()
    {
        var value = Value is { } v ? Format(v) : "no data";
        return Unit == "requests"
            ? $"{Name} {value} ({(Outcome == CheckOutcome.Passed ? ">=" : "<")} min {Format(Threshold)})"
            : $"{Name} {value} ({Outcome switch { CheckOutcome.Passed => "<=", CheckOutcome.Failed => ">", _ => "vs" }} max {Format(Threshold)})";
    }

    private string Format(double value) => Unit switch
    {
        "ratio" => (value * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%",
        "seconds" when value < 1 => (value * 1000).ToString("0.##", CultureInfo.InvariantCulture) + "ms",
        "seconds" => value.ToString("0.###", CultureInfo.InvariantCulture) + "s",
        _ => value.ToString("0.#", CultureInfo.InvariantCulture),
    };
}

/// <summary>One analysis of the canary over a window: its checks and, when the queries could not run, why.</summary>
public sealed record CanaryAnalysis(DateTimeOffset At, IReadOnlyList<CanaryCheck> Checks, string? Error = null)
{
    /// <summary>Failed if any check failed; inconclusive if any had no data (or the queries failed); else passed.</summary>
    public AnalysisVerdict Verdict =>
        Checks.Any(c => c.Outcome == CheckOutcome.Failed) ? AnalysisVerdict.Failed
        : Error is not null || Checks.Count == 0 || Checks.Any(c => c.Outcome == CheckOutcome.NoData) ? AnalysisVerdict.Inconclusive
        : AnalysisVerdict.Passed;

    /// <summary>The failed checks, or all of them, one line.</summary>
    public string Describe()
    {
        var failed = Checks.Where(c => c.Outcome == CheckOutcome.Failed).ToList();
        var shown = string.Join(", ", (failed.Count > 0 ? failed : Checks).Select(c => c.Describe()));
        return Error is null ? shown : $"{shown}{(shown.Length > 0 ? "; " : "")}queries failed: {Error}";
    }

    /// <summary>
    /// Judges one source's measured values: the request count against the minimum; when there are enough requests,
    /// each rate/latency against its maximum (no data: inconclusive); when there are too few, those checks are not
    /// judged (a few failures in a handful of requests are noise, not a verdict).
    /// </summary>
    public static IEnumerable<CanaryCheck> Judge(string source, double? requests, long minRequests, IEnumerable<(string Name, double? Value, double Max, string Unit)> measures)
    {
        var enough = requests is { } r && r >= minRequests;
        yield return new CanaryCheck($"{source} requests", requests, minRequests, enough ? CheckOutcome.Passed : CheckOutcome.NoData, "requests");
        foreach (var (name, value, max, unit) in measures)
        {
            var outcome = !enough || value is null ? CheckOutcome.NoData : value <= max ? CheckOutcome.Passed : CheckOutcome.Failed;
            yield return new CanaryCheck($"{source} {name}", value, max, outcome, unit);
        }
    }
}

/// <summary>What an analysis looks at: the target, the plan (thresholds, sources, canary Deployment), the window.</summary>
public sealed record CanaryAnalysisRequest(CanaryTarget Target, CanaryPlan Plan, TimeSpan Window);

/// <summary>Runs the analysis of a canary (against Prometheus in production; scripted in tests).</summary>
public interface ICanaryAnalyzer
{
    /// <summary>Measures and judges the canary over the request's window. Query errors are reported in
    /// <see cref="CanaryAnalysis.Error"/> (inconclusive), not thrown.</summary>
    Task<CanaryAnalysis> AnalyseAsync(CanaryAnalysisRequest request, CancellationToken cancellationToken);
}
