using System.Diagnostics;
using System.Globalization;
using TorchSharp;

namespace InferenceServer.Perf;

/// <summary>A raw decode configuration: <see cref="Loops"/> parallel decode loops with <see cref="Threads"/> libtorch intra-op threads each.</summary>
internal readonly record struct LoopSetting(int Loops, int Threads)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Loops}x{Threads}");

    /// <summary>
    /// The configurations that use the machine without oversubscribing it, L x T ≤ cores, with L and T powers of two or
    /// the core count (on two cores: 1x1, 1x2, 2x1), plus <paramref name="server"/>, the server's own, whatever it is.
    /// Ordered by loops, then threads.
    /// </summary>
    public static IReadOnlyList<LoopSetting> Sweep(int cores, LoopSetting server)
    {
        var counts = Enumerable.Range(0, 31).Select(p => 1 << p).TakeWhile(n => n <= cores).Append(cores).Distinct().ToArray();
        return counts.SelectMany(l => counts.Where(t => l * t <= cores).Select(t => new LoopSetting(l, t)))
            .Append(server).Distinct().OrderBy(s => s.Loops).ThenBy(s => s.Threads).ToArray();
    }
}

/// <summary>
/// The raw baseline of text generation in a given configuration: L greedy decode loops, each on a thread of its own
/// with a module of its own (as the server's continuous batcher runs one decode thread per engine instance, each
/// instance its own <c>jit.load</c>), the batch's rows split over them as evenly as possible (the server's fair-share
/// admission does the same with its sequences), and every loop's tokens summed over one wall-clock window.
/// </summary>
internal sealed class ParallelDecodeLoops : IDisposable
{
    private readonly GreedyDecodeLoop[] _loops;

    /// <summary>Loads <paramref name="maxLoops"/> modules up front, so that no load falls inside a measurement.</summary>
    public ParallelDecodeLoops(string modelFile, int window, IReadOnlyList<long[]> prompts, int maxTokens, int maxLoops)
    {
        _loops = new GreedyDecodeLoop[maxLoops];
        for (var i = 0; i < maxLoops; i++)
        {
            _loops[i] = new GreedyDecodeLoop(modelFile, window, prompts, maxTokens);
        }
    }

    /// <summary>The first loop, for the greedy comparison with the server (batch 1).</summary>
    public GreedyDecodeLoop First => _loops[0];

    /// <summary>
    /// One closed-loop measurement of <paramref name="setting"/> at <paramref name="batch"/> rows in flight (all loops
    /// together). A "request" is one step of one loop (its latency the step time); <see cref="Measurement.Samples"/>
    /// counts every loop's tokens. With fewer rows than loops the spare loops stay idle, as the server's do.
    /// libtorch's thread count is per process: this sets it to the setting's, and the caller restores its own.
    /// </summary>
    public Measurement Run(LoopSetting setting, int batch, TimeSpan duration, long maxSteps)
    {
        if (setting.Loops > _loops.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(setting), $"{setting} needs {setting.Loops} modules, {_loops.Length} loaded");
        }
        // Each loop runs on a new thread, and ATen gives a new thread the process's thread count on its first parallel
        // region: set before the threads start, it applies to every loop, and each loop's OpenMP team ends with its thread.
        torch.set_num_threads(setting.Threads);
        var rows = Enumerable.Range(0, setting.Loops).Select(i => batch / setting.Loops + (i < batch % setting.Loops ? 1 : 0)).Where(n => n > 0).ToArray();
        var window = new LoadLoop.Window(duration, maxSteps);
        var recorders = new Recorder[rows.Length];
        var threads = new Thread[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            var loop = i;
            var recorder = recorders[loop] = new Recorder();
            var step = _loops[loop].NewBatch(rows[loop], rows[..loop].Sum());
            threads[loop] = new Thread(() => Decode(step, window, recorder)) { IsBackground = true, Name = $"raw-decode-{loop}" };
        }
        foreach (var thread in threads)
        {
            thread.Start();
        }
        var deadline = Stopwatch.GetTimestamp() + (long)((duration + LoadLoop.RequestTimeout).TotalSeconds * Stopwatch.Frequency);
        foreach (var thread in threads)
        {
            var left = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
            if (!thread.Join(left))
            {
                throw new TimeoutException($"a raw decode loop did not finish within {duration + LoadLoop.RequestTimeout}");
            }
        }
        var tokens = recorders.Select((r, i) => (long)r.LatenciesMs.Count * rows[i]).Sum();
        return window.Finish(recorders) with { Samples = tokens };
    }

    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }
    }

    private static void Decode(Action step, LoadLoop.Window window, Recorder recorder)
    {
        try
        {
            while (window.TryBegin())
            {
                var start = Stopwatch.GetTimestamp();
                step();
                recorder.Success(start);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            recorder.Error(e);
        }
    }
}
