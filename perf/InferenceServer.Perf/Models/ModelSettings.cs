using System.Globalization;
using System.Text;

namespace InferenceServer.Perf;

/// <summary>
/// A served model's scheduling settings, written as its <c>config.yaml</c> (the server's Triton-style keys):
/// <c>max_batch_size</c>, <c>dynamic_batching</c> (when <see cref="DynamicBatching"/>), <c>instance_group</c> and
/// <c>parameters.intra_op_num_threads</c>.
/// </summary>
internal sealed record ModelSettings
{
    public int MaxBatchSize { get; init; }

    public bool DynamicBatching { get; init; }

    public long MaxQueueDelayMicroseconds { get; init; }

    public IReadOnlyList<int> PreferredBatchSizes { get; init; } = [];

    public int MaxQueueSize { get; init; } = 1024;

    public int Instances { get; init; } = 1;

    public int IntraOpThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>"1 x 2" = one instance with two intra-op threads.</summary>
    public string Threading => $"{Instances} x {IntraOpThreads}";

    public override string ToString() =>
        $"max_batch_size {MaxBatchSize}, " +
        (DynamicBatching ? $"dynamic_batching (max_queue_delay {MaxQueueDelayMicroseconds} us{(PreferredBatchSizes.Count > 0 ? ", preferred " + string.Join("/", PreferredBatchSizes) : "")})" : "no dynamic_batching") +
        $", {Instances} instance(s) x {IntraOpThreads} intra-op thread(s)";

    public string ToYaml()
    {
        var s = new StringBuilder();
        s.AppendLine(Invariant($"max_batch_size: {MaxBatchSize}"));
        if (DynamicBatching)
        {
            s.AppendLine("dynamic_batching:");
            s.AppendLine(Invariant($"  max_queue_delay_microseconds: {MaxQueueDelayMicroseconds}"));
            if (PreferredBatchSizes.Count > 0)
            {
                s.AppendLine($"  preferred_batch_size: [{string.Join(", ", PreferredBatchSizes)}]");
            }
            s.AppendLine("  default_queue_policy:");
            s.AppendLine(Invariant($"    max_queue_size: {MaxQueueSize}"));
        }
        s.AppendLine("instance_group:");
        s.AppendLine(Invariant($"  - count: {Instances}"));
        s.AppendLine("    kind: KIND_CPU");
        s.AppendLine("parameters:");
        s.AppendLine(Invariant($"  intra_op_num_threads: \"{IntraOpThreads}\""));
        return s.ToString();
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
