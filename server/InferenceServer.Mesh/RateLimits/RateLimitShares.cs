using System.Globalization;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>A global per-model budget: requests per second shared by every pod of the Service.</summary>
public sealed record ModelBudget(string Model, double RequestsPerSecond)
{
    /// <summary>Parses <c>MODEL=RPS</c> (e.g. <c>simple=100</c>); throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static ModelBudget Parse(string text)
    {
        var eq = text.IndexOf('=');
        if (eq <= 0 || eq == text.Length - 1)
        {
            throw new FormatException($"budget '{text}' is not MODEL=REQUESTS_PER_SECOND (e.g. simple=100)");
        }
        var model = text[..eq].Trim();
        if (!double.TryParse(text[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) || !double.IsFinite(rate) || rate <= 0)
        {
            throw new FormatException($"budget '{text}': the requests per second must be a positive number, not '{text[(eq + 1)..]}'");
        }
        return new ModelBudget(model, rate);
    }

    /// <summary>Parses every budget and rejects a model named twice.</summary>
    public static IReadOnlyList<ModelBudget> ParseAll(IEnumerable<string> texts)
    {
        var budgets = texts.Select(Parse).ToList();
        var twice = budgets.GroupBy(b => b.Model, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
        {
            throw new FormatException($"model '{twice.Key}' has more than one budget");
        }
        return budgets;
    }
}

/// <summary>One pod's token bucket: whole requests per second and the bucket's capacity.</summary>
public sealed record PodShare(int RequestsPerSecond, int Burst)
{
    public override string ToString() => $"{RequestsPerSecond} rps (burst {Burst})";
}

/// <summary>
/// The replica-aware share of a global budget. A subset that receives <c>w</c> percent of the traffic over <c>r</c> ready
/// pods gives each pod <c>ceil(budget x w/100 / r)</c> requests per second: the canary's pods share the canary's
/// weight, not an equal split of the whole budget, and rounding up means the pods' sum is never below the budget (it
/// exceeds it by less than one request per second per pod). The burst is the share times a factor (default 1: a pod
/// admits at most one second's worth at once), rounded up, at least 1.
/// </summary>
public static class RateLimitShares
{
    /// <summary>Each pod's share of <paramref name="budget"/> in a subset with <paramref name="weightPercent"/> of the
    /// traffic over <paramref name="readyReplicas"/> ready pods; null when the subset gets no traffic by weight or has no
    /// ready pod (nothing to assign: its pods keep the limits they have).</summary>
    public static PodShare? PerPod(double budget, int weightPercent, int readyReplicas, double burstFactor = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budget);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(burstFactor);
        if (weightPercent <= 0 || readyReplicas <= 0)
        {
            return null;
        }
        // budget * w / (100 r): exact in double for the usual integers; the epsilon keeps 30.000000000000004 at 30.
        var exact = budget * weightPercent / (100.0 * readyReplicas);
        var rate = Math.Max(1, CeilingOf(exact));
        return new PodShare(rate, Math.Max(1, CeilingOf(rate * burstFactor)));
    }

    private static int CeilingOf(double value) => (int)Math.Min(int.MaxValue, Math.Ceiling(value - 1e-9 * Math.Max(1, value)));
}
