using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// CPU time of this process's threads by thread name (<c>/proc/self/task/*/comm</c> and <c>stat</c>, utime + stime,
/// 10 ms ticks), to tell apart, in an in-process server cell, what the decode threads used from what everything else
/// used (the HTTP server, the load generator, the thread pool, the GC, ONNX Runtime's pool threads).
/// </summary>
internal sealed class ThreadCpu
{
    private readonly Dictionary<int, (string Name, long Ticks)> _threads;

    private ThreadCpu(Dictionary<int, (string Name, long Ticks)> threads) => _threads = threads;

    /// <summary>Every thread's name and CPU ticks now (empty where /proc is not there).</summary>
    public static ThreadCpu Take()
    {
        var threads = new Dictionary<int, (string, long)>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                try
                {
                    var name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    threads[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] =
                        (name, long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture));
                }
                catch (IOException)
                {
                    // The thread ended while we looked.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No /proc: nothing to report.
        }
        return new ThreadCpu(threads);
    }

    /// <summary>The threads alive now that were not in <paramref name="earlier"/> (e.g. those a model's load started: ONNX Runtime's intra-op pool).</summary>
    public IReadOnlySet<int> StartedSince(ThreadCpu earlier) => _threads.Keys.Where(id => !earlier._threads.ContainsKey(id)).ToHashSet();

    /// <summary>
    /// CPU seconds since <paramref name="start"/>: the threads whose name starts with <paramref name="prefix"/>, the
    /// threads in <paramref name="pool"/>, and the rest by name, largest first (threads that ended in between are not counted).
    /// </summary>
    public (double Matching, double Pool, IReadOnlyList<(string Name, double Seconds)> Others) Since(ThreadCpu start, string prefix, IReadOnlySet<int> pool)
    {
        double matching = 0, inPool = 0;
        var others = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (id, (name, ticks)) in _threads)
        {
            var used = (ticks - (start._threads.TryGetValue(id, out var before) ? before.Ticks : 0)) / CpuSample.TicksPerSecond;
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                matching += used;
            }
            else if (pool.Contains(id))
            {
                inPool += used;
            }
            else if (used > 0)
            {
                others[name] = others.GetValueOrDefault(name) + used;
            }
        }
        return (matching, inPool, others.OrderByDescending(o => o.Value).Select(o => (o.Key, o.Value)).ToArray());
    }

    /// <summary>"decode threads 28.1 s, their ONNX Runtime pool threads 0.0 s, other threads 1.2 s = 96 µs per token (...)".</summary>
    public string Describe(ThreadCpu start, string prefix, IReadOnlySet<int> pool, double tokens)
    {
        var (matching, inPool, others) = Since(start, prefix, pool);
        var rest = others.Sum(o => o.Seconds);
        return string.Create(CultureInfo.InvariantCulture,
            $"CPU by thread over the window: decode threads ({prefix}*) {matching:F2} s, the model's ONNX Runtime pool threads {inPool:F2} s, other threads {rest:F2} s = {(tokens > 0 ? rest / tokens * 1e6 : double.NaN):F0} µs per token ({string.Join(", ", others.Take(6).Select(o => $"{o.Name} {o.Seconds:F2} s"))})");
    }
}
