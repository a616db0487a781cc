using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// A generative model's own token metrics (Prometheus, on the server's metrics port) at one moment: the sums and counts
/// of time to first token and time per output token, and the tokens generated. Two of them, before and after a cell,
/// give the server's view of the cell.
/// </summary>
internal sealed record TokenMetrics(double TtftSum, double TtftCount, double TpotSum, double TpotCount, double Tokens)
{
    /// <summary>Scrapes <c>/metrics</c> for <paramref name="model"/>; null when the server has no metrics address.</summary>
    public static async Task<TokenMetrics?> ScrapeAsync(HttpClient metrics, string model)
    {
        if (metrics.BaseAddress is null)
        {
            return null;
        }
        var text = await metrics.GetStringAsync("metrics").ConfigureAwait(false);
        var label = "model=\"" + model + "\"";
        double Value(string name)
        {
            foreach (var line in text.AsSpan().EnumerateLines())
            {
                if (line.StartsWith(name + "{", StringComparison.Ordinal) && line.Contains(label, StringComparison.Ordinal))
                {
                    return double.Parse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture);
                }
            }
            return double.NaN;
        }
        return new TokenMetrics(
            Value("inference_time_to_first_token_seconds_sum"), Value("inference_time_to_first_token_seconds_count"),
            Value("inference_time_per_output_token_seconds_sum"), Value("inference_time_per_output_token_seconds_count"),
            Value("inference_generation_tokens_total"));
    }

    /// <summary>Mean time per output token between two scrapes (the server's: one sampled token to the next), ms; NaN without both.</summary>
    public static double TpotMs(TokenMetrics? before, TokenMetrics? after) =>
        before is null || after is null ? double.NaN : (after.TpotSum - before.TpotSum) / (after.TpotCount - before.TpotCount) * 1000;

    /// <summary>The server's view over the window: mean TTFT (arrival → first token sampled) and mean time between tokens.</summary>
    public static string? Describe(TokenMetrics? before, TokenMetrics? after) =>
        before is null || after is null ? null : string.Create(CultureInfo.InvariantCulture,
            $"server metrics over the window: {after.Tokens - before.Tokens:F0} tokens, TTFT mean {(after.TtftSum - before.TtftSum) / (after.TtftCount - before.TtftCount) * 1000:F2} ms ({after.TtftCount - before.TtftCount:F0} requests), TPOT mean {TpotMs(before, after):F3} ms");
}

/// <summary>Counters of the server's <c>/metrics</c> (vLLM's names among them) summed over a model's series.</summary>
internal static class PrometheusCounters
{
    /// <summary>
    /// Each of <paramref name="names"/>: the sum of its samples labelled with <paramref name="model"/> (<c>model_name</c> or
    /// <c>model</c>), else of all its samples; null for a family the server does not export. Null without a metrics address.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, double?>?> ScrapeAsync(HttpClient metrics, string model, IReadOnlyList<string> names)
    {
        if (metrics.BaseAddress is null)
        {
            return null;
        }
        var text = await metrics.GetStringAsync("metrics").ConfigureAwait(false);
        var result = new Dictionary<string, double?>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            double all = 0, mine = 0;
            bool any = false, labelled = false;
            foreach (var line in text.AsSpan().EnumerateLines())
            {
                if (!(line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal)))
                {
                    continue;
                }
                var value = double.Parse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture);
                any = true;
                all += value;
                if (line.Contains("=\"" + model + "\"", StringComparison.Ordinal))
                {
                    labelled = true;
                    mine += value;
                }
            }
            result[name] = any ? (labelled ? mine : all) : null;
        }
        return result;
    }
}
