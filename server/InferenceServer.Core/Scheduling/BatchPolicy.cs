using System.Diagnostics;
using InferenceServer.Configuration;
using InferenceServer.Repository;

namespace InferenceServer.Scheduling;

/// <summary>
/// Triton's dynamic-batching decision: dispatch when the batch is full (max_batch_size, or the next request would
/// not fit), when a preferred batch size can be formed, or when the oldest request has waited max_queue_delay.
/// Without batching every request is its own batch.
/// </summary>
internal sealed class BatchPolicy
{
    private readonly long _delayTicks;
    private readonly IReadOnlyList<int> _preferred;

    public BatchPolicy(int maxBatchSize, DynamicBatchingConfig? batching)
    {
        Batching = batching is not null && maxBatchSize > 0;
        MaxBatchSize = Math.Max(1, maxBatchSize);
        // In floating point and capped: microseconds * Frequency overflows a long past about 2.5 hours of delay.
        _delayTicks = batching is null ? 0 : (long)Math.Min(batching.MaxQueueDelayMicroseconds / 1e6 * Stopwatch.Frequency, long.MaxValue / 4);
        _preferred = batching?.PreferredBatchSizes ?? [];
    }

    public bool Batching { get; }

    public long MaxBatchSize { get; }

    /// <summary>How many of the leading <paramref name="candidates"/> to dispatch now; 0 to wait until <paramref name="waitUntil"/> or a new arrival.</summary>
    public int Choose(List<PendingRequest> candidates, long oldestEnqueued, out long waitUntil)
    {
        waitUntil = oldestEnqueued + _delayTicks;
        if (!Batching)
        {
            return 1;
        }
        long rows = 0;
        int fit = 0, preferred = 0;
        foreach (var candidate in candidates)
        {
            if (rows + candidate.BatchSize > MaxBatchSize)
            {
                break;
            }
            rows += candidate.BatchSize;
            fit++;
            if (IsPreferred(rows))
            {
                preferred = fit;
            }
        }
        var full = rows == MaxBatchSize || fit < candidates.Count;
        if (full)
        {
            return fit;
        }
        if (preferred > 0)
        {
            return preferred;
        }
        return Stopwatch.GetTimestamp() >= waitUntil ? fit : 0;
    }

    private bool IsPreferred(long rows)
    {
        foreach (var p in _preferred)
        {
            if (p == rows)
            {
                return true;
            }
        }
        return false;
    }
}
