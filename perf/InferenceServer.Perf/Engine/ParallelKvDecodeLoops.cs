using System.Diagnostics;

namespace InferenceServer.Perf;

/// <summary>One raw KV measurement: tokens/s over whole rounds, with each round's prefill and decode step times.</summary>
internal sealed record KvRawResult(Measurement Measurement, double[] PrefillMs, int Rounds, int RowsPerLoopMax)
{
    /// <summary>Decode tokens (after each row's first) per second of decoding, summed over the loops (which decode side by side).</summary>
    public double DecodeTokensPerSecond { get; init; }
}

/// <summary>A raw decode loop that runs whole rounds (every row's prompt, then decode steps to the last token) on a session of its own.</summary>
internal interface IKvRoundLoop : IDisposable
{
    /// <summary>The session's intra-op threads.</summary>
    int Threads { get; }

    /// <summary>Where its outputs go, as the report names it (<c>ort</c>, <c>bound</c>, <c>shared</c>).</summary>
    string OutputsName { get; }

    /// <summary>One round over <paramref name="prompts"/> (all of <paramref name="promptTokens"/> tokens) to <paramref name="newTokens"/> tokens per row; fills <paramref name="generated"/>'s rows when given.</summary>
    KvRoundTimes Round(IReadOnlyList<int[]> prompts, int promptTokens, int newTokens, int[][]? generated = null);
}

/// <summary>
/// The raw KV baseline in one configuration: L <see cref="KvDecodeLoop"/>s side by side, each on a thread of its own
/// with a session of its own of T intra-op threads (as the server runs one decode thread per engine instance, each
/// instance its own session), the rows split over them as evenly as possible (the server's fair-share admission does
/// the same). Every loop runs the same number of whole rounds (prefill, then decode to the last token), so the wall
/// time holds every loop's prefills and decode steps: tokens/s = generated tokens / wall time, prefill included.
/// Sessions are made once per thread count and kept (a session takes seconds to load), so the configurations share them.
/// </summary>
internal sealed class ParallelKvDecodeLoops(Func<int, IKvRoundLoop> create) : IDisposable
{
    private readonly Dictionary<int, List<IKvRoundLoop>> _sessions = [];

    /// <summary>Loops of <see cref="KvDecodeLoop"/> (Optimum's layout) with <paramref name="outputs"/>.</summary>
    public ParallelKvDecodeLoops(string modelFile, KvGraphShape shape, KvOutputs outputs)
        : this(threads => new KvDecodeLoop(modelFile, threads, shape, outputs))
    {
        Outputs = outputs;
    }

    public KvOutputs Outputs { get; }

    /// <summary>The first loop of <paramref name="threads"/> threads (made if needed), for single-row measurements.</summary>
    public IKvRoundLoop Loop(int threads) => Loops(threads, 1)[0];

    /// <summary>
    /// <paramref name="rounds"/> rounds of <paramref name="setting"/> with <paramref name="prompts"/> (one row each)
    /// split over its loops; a measurement whose requests are decode steps (latency = a loop's step time) and whose
    /// samples are the generated tokens.
    /// </summary>
    public KvRawResult Run(LoopSetting setting, IReadOnlyList<int[]> prompts, int promptTokens, int newTokens, int rounds)
    {
        var loops = Loops(setting.Threads, setting.Loops);
        var rows = Enumerable.Range(0, setting.Loops).Select(i => prompts.Count / setting.Loops + (i < prompts.Count % setting.Loops ? 1 : 0)).Where(n => n > 0).ToArray();
        var first = new int[rows.Length];
        for (var i = 1; i < rows.Length; i++)
        {
            first[i] = first[i - 1] + rows[i - 1];
        }
        var times = new List<KvRoundTimes>[rows.Length];
        var failures = new Exception?[rows.Length];
        using var start = new Barrier(rows.Length + 1);
        var threads = new Thread[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            var loop = i;
            var mine = prompts.Skip(first[loop]).Take(rows[loop]).ToArray();
            times[loop] = [];
            threads[loop] = new Thread(() =>
            {
                start.SignalAndWait();
                try
                {
                    for (var r = 0; r < rounds; r++)
                    {
                        times[loop].Add(loops[loop].Round(mine, promptTokens, newTokens));
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    failures[loop] = e;
                }
            }) { IsBackground = true, Name = $"raw-kv-{loop}" };
            threads[loop].Start();
        }
        start.SignalAndWait();
        var began = Stopwatch.GetTimestamp();
        foreach (var thread in threads)
        {
            thread.Join();
        }
        var wall = Stopwatch.GetElapsedTime(began).TotalSeconds;
        if (failures.FirstOrDefault(f => f is not null) is { } failure)
        {
            throw new InvalidOperationException($"a raw KV decode loop failed: {failure.Message}", failure);
        }
        var tokens = times.Select((t, i) => (long)t.Count * rows[i] * newTokens).Sum();
        var steps = times.SelectMany(t => t).SelectMany(t => t.StepMs).ToArray();
        Array.Sort(steps);
        var m = new Measurement(steps.Length, 0, wall, steps, null) { Samples = tokens };
        // Each loop's decode rate (its rows' tokens after the first over its rounds' first-to-last-token time), summed: the loops decode side by side.
        var decode = times.Select((t, i) => (double)t.Count * rows[i] * (newTokens - 1) / t.Sum(r => (r.LastToken - r.FirstToken) / (double)Stopwatch.Frequency)).Sum();
        return new KvRawResult(m, times.SelectMany(t => t).Select(t => t.PrefillMs).ToArray(), times.Max(t => t.Count), rows.Max()) { DecodeTokensPerSecond = decode };
    }

    public void Dispose()
    {
        foreach (var loop in _sessions.Values.SelectMany(l => l))
        {
            loop.Dispose();
        }
    }

    private List<IKvRoundLoop> Loops(int threads, int count)
    {
        if (!_sessions.TryGetValue(threads, out var list))
        {
            _sessions[threads] = list = [];
        }
        while (list.Count < count)
        {
            list.Add(create(threads));
        }
        return list;
    }
}
