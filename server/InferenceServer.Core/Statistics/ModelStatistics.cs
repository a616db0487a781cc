using System.Collections.Concurrent;
using System.Diagnostics;

namespace InferenceServer.Statistics;

/// <summary>A count and a cumulative duration, updated without locks.</summary>
public sealed class DurationStatistic
{
    private long _count;
    private long _ticks;
    private Prometheus.Histogram.Child? _histogram;
    private Prometheus.Counter.Child? _counter;

    /// <summary>Also reports each occurrence to Prometheus: its duration in seconds to <paramref name="histogram"/>, one to <paramref name="counter"/>.</summary>
    internal void Export(Prometheus.Histogram.Child? histogram, Prometheus.Counter.Child? counter)
    {
        _histogram = histogram;
        _counter = counter;
    }

    /// <summary>How many times it was recorded.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>The cumulative duration in nanoseconds.</summary>
    public long Nanoseconds => (long)(Interlocked.Read(ref _ticks) * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>Adds one occurrence lasting <paramref name="ticks"/> Stopwatch ticks.</summary>
    public void Record(long ticks)
    {
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _ticks, ticks);
        _histogram?.Observe(ticks / (double)Stopwatch.Frequency);
        _counter?.Inc();
    }
}

/// <summary>The compute durations of executions of one batch size.</summary>
public sealed class BatchStatistics
{
    /// <summary>Preparing inputs.</summary>
    public DurationStatistic ComputeInput { get; } = new();

    /// <summary>Running the engine.</summary>
    public DurationStatistic ComputeInfer { get; } = new();

    /// <summary>Copying outputs.</summary>
    public DurationStatistic ComputeOutput { get; } = new();
}

/// <summary>
/// Triton's per-model-version statistics: request outcomes, time in queue and in each compute phase, and
/// executions per batch size. Durations are cumulative nanoseconds.
/// </summary>
public sealed class ModelStatistics
{
    private long _inferenceCount;
    private long _executionCount;
    private long _lastInferenceMs;

    /// <summary>Requests that succeeded, and their end-to-end time in the server.</summary>
    public DurationStatistic Success { get; } = new();

    /// <summary>Requests that failed, and their time in the server.</summary>
    public DurationStatistic Fail { get; } = new();

    /// <summary>Time from arrival to the start of execution.</summary>
    public DurationStatistic Queue { get; } = new();

    /// <summary>Preparing inputs for the engine.</summary>
    public DurationStatistic ComputeInput { get; } = new();

    /// <summary>The engine's run.</summary>
    public DurationStatistic ComputeInfer { get; } = new();

    /// <summary>Copying outputs out of the engine.</summary>
    public DurationStatistic ComputeOutput { get; } = new();

    /// <summary>Executions by batch size.</summary>
    public ConcurrentDictionary<long, BatchStatistics> Batches { get; } = new();

    /// <summary>Inferences performed (a batch of n counts n).</summary>
    public long InferenceCount => Interlocked.Read(ref _inferenceCount);

    /// <summary>Engine executions (a batch counts once).</summary>
    public long ExecutionCount => Interlocked.Read(ref _executionCount);

    /// <summary>Unix time in milliseconds of the last successful inference; 0 before the first.</summary>
    public long LastInferenceMs => Interlocked.Read(ref _lastInferenceMs);

    private Observability.RequestMetrics? _metrics;

    /// <summary>Reports what is recorded here to Prometheus as well (the per-model request metrics).</summary>
    public void Export(Observability.RequestMetrics metrics)
    {
        _metrics = metrics;
        Success.Export(metrics.RequestDuration, metrics.Succeeded);
        Queue.Export(metrics.QueueDuration, null);
    }

    /// <summary>Records a failed request that spent <paramref name="ticks"/> in the server, counted by its error's status.</summary>
    public void RecordFailure(long ticks, Exception error) => RecordFailure(ticks, Inference.InferenceStatus.KindOf(error));

    /// <summary>Records a failed request of error kind <paramref name="kind"/> (null: the client cancelled).</summary>
    public void RecordFailure(long ticks, Inference.InferenceErrorKind? kind)
    {
        Fail.Record(ticks);
        _metrics?.Failed(kind);
    }

    /// <summary>Records one execution of <paramref name="batchSize"/> inferences.</summary>
    public void RecordExecution(long batchSize, long inputTicks, long inferTicks, long outputTicks)
    {
        _metrics?.ComputeDuration.Observe((inputTicks + inferTicks + outputTicks) / (double)Stopwatch.Frequency);
        _metrics?.BatchSize.Observe(batchSize);
        Interlocked.Add(ref _inferenceCount, batchSize);
        Interlocked.Increment(ref _executionCount);
        ComputeInput.Record(inputTicks);
        ComputeInfer.Record(inferTicks);
        ComputeOutput.Record(outputTicks);
        var batch = Batches.GetOrAdd(batchSize, static _ => new BatchStatistics());
        batch.ComputeInput.Record(inputTicks);
        batch.ComputeInfer.Record(inferTicks);
        batch.ComputeOutput.Record(outputTicks);
        Interlocked.Exchange(ref _lastInferenceMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }
}
