using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace InferenceServer.Observability;

/// <summary>
/// The gauges exported under vLLM's own names (<c>vllm:num_requests_running</c>, <c>vllm:num_requests_waiting</c>,
/// <c>vllm:kv_cache_usage_perc</c>), so dashboards and autoscalers written for vLLM read them unchanged. Their names
/// hold a colon, which Prometheus allows but prometheus-net refuses, so these few series are kept here and written
/// in the text exposition format after the registry's own (<see cref="WriteAsync"/>).
/// </summary>
public sealed class VllmGauges
{
    /// <summary>Sequences in the continuous batch.</summary>
    public const string Running = "vllm:num_requests_running";

    /// <summary>Requests waiting for a slot or for KV-cache memory.</summary>
    public const string Waiting = "vllm:num_requests_waiting";

    /// <summary>Fraction (0 to 1) of the KV cache reserved by running sequences.</summary>
    public const string KvCacheUsage = "vllm:kv_cache_usage_perc";

    private static readonly (string Name, string Help)[] Families =
    [
        (Running, "Sequences in the continuous batch (vLLM's name)."),
        (Waiting, "Generation requests waiting for a slot or for KV-cache memory (vLLM's name)."),
        (KvCacheUsage, "Fraction (0 to 1) of a KV-cache decoder's cache reserved by running sequences, over its instances (vLLM's name)."),
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
            text.Append("# TYPE ").Append(Families[i].Name).Append(" gauge\n");
            foreach (var (labels, series) in _series[i].OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                text.Append(Families[i].Name).Append('{').Append(labels).Append("} ")
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
    }
}
