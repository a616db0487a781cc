using System.Globalization;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// What a cell cost the machine: CPU busy over the whole machine and for this process (from <c>/proc</c>), the thread
/// pool's size, and, for a server cell, the model's statistics over the cell (the statistics extension's
/// difference before/after): executions, batch sizes seen, queue time per request, compute time per execution.
/// </summary>
internal sealed record Profile(double MachineBusy, double ProcessBusy, int ThreadPoolThreads, ServerStatsDelta? Server)
{
    /// <summary>This process's garbage collections (gen0/gen1/gen2) and GC pause time during the cell.</summary>
    public GcDelta? Gc { get; init; }

    /// <summary>The load generator's CPU time per request (this process's own, or h2load's), in microseconds; null when not measured.</summary>
    public double? ClientCpuMicrosecondsPerRequest { get; init; }

    /// <summary>
    /// The target's own CPU time per request served (the server or echo process, read from its <c>/proc</c> entry), in
    /// microseconds; null when the target runs in this process. What the target costs whichever client drives it.
    /// </summary>
    public double? TargetCpuMicrosecondsPerRequest { get; init; }

    /// <summary>A benchmark's own figures for the cell (generate: the server's token metrics over the cell).</summary>
    public string? Detail { get; init; }

    /// <summary>Other processes used more than a tenth of the machine during the cell: its figures are suspect.</summary>
    public bool Disturbed => MachineBusy - ProcessBusy > 0.1;

    public override string ToString() =>
        (double.IsNaN(MachineBusy) ? $"{ThreadPoolThreads} pool threads" : Invariant($"cpu {MachineBusy:P0} busy (this process and its children {ProcessBusy:P0} of all cores), {ThreadPoolThreads} pool threads")) +
        (Disturbed ? Invariant($" DISTURBED: other processes used {MachineBusy - ProcessBusy:P0}") : "") +
        (ClientCpuMicrosecondsPerRequest is { } client ? Invariant($"; client CPU {client:F1} µs/request") : "") +
        (TargetCpuMicrosecondsPerRequest is { } target ? Invariant($"; target CPU {target:F1} µs/request") : "") +
        (Gc is { } gc ? "; " + gc : "") +
        (Server is { } s ? "; " + s : "") +
        (Detail is { } d ? "; " + d : "");

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>CPU time of the machine and of this process, sampled from <c>/proc/stat</c> and <c>/proc/self/stat</c> (zeros elsewhere).</summary>
internal readonly record struct CpuSample(long MachineBusy, long MachineTotal, long ProcessTicks)
{
    /// <summary>This process's own CPU ticks (utime + stime): with the servers out of process, the load generator's.</summary>
    public long SelfTicks { get; init; }

    /// <summary>CPU ticks of the children this process has waited for (cutime + cstime): an h2load run that ended.</summary>
    public long ReapedTicks { get; init; }

    /// <summary>Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).</summary>
    public const double TicksPerSecond = 100;

    public static CpuSample Take()
    {
        try
        {
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(long.Parse).ToArray();
            var total = fields.Take(8).Sum();
            var idle = fields[3] + fields[4];
            var after = Fields("/proc/self/stat")!;
            // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name; 16 and 17 (cutime,
            // cstime) the children this process has waited for (h2load); the child servers still running add their own.
            var ticks = Ticks(after, 11) + Ticks(after, 12) + Ticks(after, 13) + Ticks(after, 14);
            foreach (var pid in Children.Keys)
            {
                if (Fields($"/proc/{pid}/stat") is { } child)
                {
                    ticks += Ticks(child, 11) + Ticks(child, 12);
                }
            }
            return new CpuSample(total - idle, total, ticks) { SelfTicks = Ticks(after, 11) + Ticks(after, 12), ReapedTicks = Ticks(after, 13) + Ticks(after, 14) };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or InvalidOperationException)
        {
            return default;
        }
    }

    /// <summary>The CPU ticks (utime + stime) of process <paramref name="pid"/> so far; null when it cannot be read.</summary>
    public static long? TicksOf(int pid) => Fields($"/proc/{pid}/stat") is { } f ? Ticks(f, 11) + Ticks(f, 12) : null;

    /// <summary>Microseconds of CPU per request between two readings of <see cref="TicksOf"/>; null when either is missing.</summary>
    public static double? MicrosecondsPerRequest(long? before, long? after, long requests) =>
        before is { } b && after is { } a && requests > 0 ? (a - b) / TicksPerSecond * 1e6 / requests : null;

    /// <summary>Processes started by this one whose CPU counts as this process's (the out-of-process servers and echo).</summary>
    public static System.Collections.Concurrent.ConcurrentDictionary<int, bool> Children { get; } = new();

    private static long Ticks(string[] fields, int i) => long.Parse(fields[i], CultureInfo.InvariantCulture);

    private static string[]? Fields(string path)
    {
        try
        {
            var text = File.ReadAllText(path);
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>(machine busy fraction, this process's fraction of all cores) since <paramref name="start"/>.</summary>
    public (double Machine, double Process) Since(CpuSample start)
    {
        var total = MachineTotal - start.MachineTotal;
        return total <= 0 ? (double.NaN, double.NaN) : ((MachineBusy - start.MachineBusy) / (double)total, (ProcessTicks - start.ProcessTicks) / (double)total);
    }
}

/// <summary>A model's statistics over one cell.</summary>
internal sealed record ServerStatsDelta(long Inferences, long Executions, double QueueMsPerRequest, double ComputeInputMsPerExecution,
    double ComputeInferMsPerExecution, double ComputeOutputMsPerExecution, IReadOnlyDictionary<long, long> ExecutionsByBatchSize)
{
    public double AverageBatch => Executions == 0 ? double.NaN : Inferences / (double)Executions;

    /// <summary>Requests the server counted as successful (the statistics extension's <c>success</c>).</summary>
    public long Successes { get; init; }

    /// <summary>Requests the server counted as failed (<c>fail</c>).</summary>
    public long Failures { get; init; }

    public static async Task<ModelStatistics?> SnapshotAsync(GRPCInferenceService.GRPCInferenceServiceClient grpc, string model)
    {
        var response = await grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = model }, deadline: DateTime.UtcNow.AddSeconds(10)).ConfigureAwait(false);
        return response.ModelStats.FirstOrDefault();
    }

    public static ServerStatsDelta? Between(ModelStatistics? before, ModelStatistics? after)
    {
        if (before is null || after is null)
        {
            return null;
        }
        var executions = (long)(after.ExecutionCount - before.ExecutionCount);
        var requests = (long)(after.InferenceStats.Queue.Count - before.InferenceStats.Queue.Count);
        double Ms(StatisticDuration a, StatisticDuration b, long per) => per == 0 ? double.NaN : (a.Ns - b.Ns) / 1e6 / per;
        var byBatch = new SortedDictionary<long, long>();
        foreach (var batch in after.BatchStats)
        {
            var previous = before.BatchStats.FirstOrDefault(b => b.BatchSize == batch.BatchSize)?.ComputeInfer.Count ?? 0;
            if (batch.ComputeInfer.Count > previous)
            {
                byBatch[(long)batch.BatchSize] = (long)(batch.ComputeInfer.Count - previous);
            }
        }
        return new ServerStatsDelta((long)(after.InferenceCount - before.InferenceCount), executions,
            Ms(after.InferenceStats.Queue, before.InferenceStats.Queue, requests),
            Ms(after.InferenceStats.ComputeInput, before.InferenceStats.ComputeInput, executions),
            Ms(after.InferenceStats.ComputeInfer, before.InferenceStats.ComputeInfer, executions),
            Ms(after.InferenceStats.ComputeOutput, before.InferenceStats.ComputeOutput, executions),
            byBatch)
        {
            Successes = (long)(after.InferenceStats.Success.Count - before.InferenceStats.Success.Count),
            Failures = (long)(after.InferenceStats.Fail.Count - before.InferenceStats.Fail.Count),
        };
    }

    public override string ToString()
    {
        var top = ExecutionsByBatchSize.OrderByDescending(kv => kv.Value).Take(5).Select(kv => $"{kv.Key}:{kv.Value}");
        return string.Create(CultureInfo.InvariantCulture,
            $"{Successes} successes, {Failures} failures, {Executions} executions, avg batch {AverageBatch:F1} (most frequent sizes {string.Join(" ", top)}), queue {QueueMsPerRequest:F2} ms/request, compute input/infer/output {ComputeInputMsPerExecution:F3}/{ComputeInferMsPerExecution:F3}/{ComputeOutputMsPerExecution:F3} ms/execution");
    }
}

/// <summary>Garbage collections, GC pause time and bytes allocated (all threads) of this process between two samples.</summary>
internal sealed record GcDelta(int Gen0, int Gen1, int Gen2, double PauseMs)
{
    /// <summary>Bytes this process allocated; with the servers out of process, what the load generator itself allocated.</summary>
    public long AllocatedBytes { get; init; }

    public static (int, int, int, TimeSpan, long) Take() => (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes(false));

    /// <summary>Requests of the cell, to print the allocation per request (0: not printed).</summary>
    public long Requests { get; init; }

    public static GcDelta Since((int Gen0, int Gen1, int Gen2, TimeSpan Pause, long Allocated) start)
    {
        var now = Take();
        return new GcDelta(now.Item1 - start.Gen0, now.Item2 - start.Gen1, now.Item3 - start.Gen2, (now.Item4 - start.Pause).TotalMilliseconds) { AllocatedBytes = now.Item5 - start.Allocated };
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"GCs gen0/1/2 {Gen0}/{Gen1}/{Gen2}, GC pauses {PauseMs:F0} ms, allocated {AllocatedBytes / 1048576.0:F0} MiB{(Requests > 0 ? $" ({AllocatedBytes / (double)Requests:F0} B/request)" : "")}");
}
