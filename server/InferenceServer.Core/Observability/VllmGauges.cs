using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace InferenceServer.Observability;

/// <summary>
/// The series exported under vLLM's own names (the gauges <c>vllm:num_requests_running</c>, <c>vllm:num_requests_waiting</c>,
/// <c>vllm:kv_cache_usage_perc</c>; the counters <c>vllm:num_preemptions_total</c>, <c>vllm:prefix_cache_queries_total</c>,
/// <c>vllm:prefix_cache_hits_total</c>), so dashboards and autoscalers written for vLLM read them unchanged. Their names
/// hold a colon, which Prometheus allows but prometheus-net refuses, so these few series are kept here and written
/// in the text exposition format after the registry's own (<see cref="WriteAsync"/>).
/// </summary>
public sealed class VllmGauges
{
    /// <summary>Sequences in the continuous batch.</summary>
    public const string Running = "vllm:num_requests_running";

    /// <summary>Requests waiting for a slot or for KV-cache memory.</summary>
    public const string Waiting = "vllm:num_requests_waiting";

    /// <summary>Fraction (0 to 1) of the KV cache taken by running sequences.</summary>
    public const string KvCacheUsage = "vllm:kv_cache_usage_perc";

    /// <summary>Counter: sequences preempted (their cache dropped to make room, recomputed later). Written with <c>_total</c>.</summary>
    public const string Preemptions = "vllm:num_preemptions";

    /// <summary>Counter: prompt tokens looked up in the prefix cache. Written with <c>_total</c>.</summary>
    public const string PrefixCacheQueries = "vllm:prefix_cache_queries";

    /// <summary>Counter: prompt tokens found in the prefix cache (not computed again). Written with <c>_total</c>.</summary>
    public const string PrefixCacheHits = "vllm:prefix_cache_hits";

    private static readonly (string Name, string Help, bool Counter)[] Families =
    [
        (Running, "Sequences in the continuous batch (vLLM's name).", false),
        (Waiting, "Generation requests waiting for a slot or for KV-cache memory (vLLM's name).", false),
        (KvCacheUsage, "Fraction (0 to 1) of a KV-cache decoder's cache taken by running sequences, over its instances (vLLM's name).", false),
        (Preemptions, "Sequences preempted: their KV cache dropped to make room for the others, recomputed when they run again (vLLM's name).", true),
        (PrefixCacheQueries, "Prompt tokens looked up in the prefix cache (vLLM's name).", true),
        (PrefixCacheHits, "Prompt tokens found in the prefix cache, copied instead of computed (vLLM's name).", true),
    ];

    // Per family: the label text of a series ("model_name=\"lm\",version=\"1\"") -> its value.
    private readonly ConcurrentDictionary<string, Series>[] _series = Families.Select(_ => new ConcurrentDictionary<string, Series>(StringComparer.Ordinal)).ToArray();

    /// <summary>The series of one model version in the family <paramref name="name"/> (one of the constants).</summary>
    public Series For(string name, string model, string version)
    {
        var family = Array.FindIndex(Families, f => f.Name == name);
        if (family < 0)
        {
            throw new ArgumentException($"'{name}' is not a vLLM gauge this server exports", nameof(name));
        }
        var labels = $"{ServerMetrics.VllmModelLabel}=\"{Escape(model)}\",{ServerMetrics.VersionLabel}=\"{Escape(version)}\"";
        return _series[family].GetOrAdd(labels, static _ => new Series());
    }

    /// <summary>Writes every family with at least one series in Prometheus' text format.</summary>
    public async Task WriteAsync(Stream stream, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        for (var i = 0; i < Families.Length; i++)
        {
            if (_series[i].IsEmpty)
            {
                continue;
            }
            text.Append("# HELP ").Append(Families[i].Name).Append(' ').Append(Families[i].Help).Append('\n');
            text.Append("# TYPE ").Append(Families[i].Name).Append(Families[i].Counter ? " counter\n" : " gauge\n");
            foreach (var (labels, series) in _series[i].OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                // A counter's samples carry _total, as Prometheus' client libraries (and vLLM) write them.
                text.Append(Families[i].Name).Append(Families[i].Counter ? "_total" : "").Append('{').Append(labels).Append("} ")
                    .Append(series.Value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>One series' value, set without allocating.</summary>
    public sealed class Series
    {
        private long _bits;

        /// <summary>The current value.</summary>
        public double Value => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _bits));

        /// <summary>Sets the value.</summary>
        public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));

        /// <summary>Adds to the value (a counter).</summary>
        public void Add(double amount)
        {
            long seen, next;
            do
            {
                seen = Interlocked.Read(ref _bits);
                next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + amount);
            }
            while (Interlocked.CompareExchange(ref _bits, next, seen) != seen);
        }
    }
}
