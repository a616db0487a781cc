namespace InferenceServer.Perf;

/// <summary>
/// The combined bound of a workload on a machine whose cores the load generator, the transport and the engine share:
/// each sample costs the engine 1/engine seconds of the machine and the transport 1/echo, so at best
/// 1 / (1/engine + 1/echo) samples per second, with both rates measured in the same run.
/// </summary>
internal static class Bound
{
    public static double Combined(double engine, double echo) => engine > 0 && echo > 0 ? 1 / (1 / engine + 1 / echo) : double.NaN;

    /// <summary>Per run: the best engine rate over the given engine cells (samples/s).</summary>
    public static double[] BestEngine(BenchResults results, IEnumerable<string> engineCells, int runs)
    {
        var cells = engineCells.ToArray();
        return Enumerable.Range(0, runs).Select(r => cells.Max(c => results.Runs(c)[r].SamplesPerSecond)).ToArray();
    }
}
