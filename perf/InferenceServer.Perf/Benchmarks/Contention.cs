using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Profile of how the engine and the transport share the two cores: the engine at one batch size alone, the echo
/// alone, and both at once (the engine's threads next to the echo's closed loop), with ONNX Runtime's intra-op
/// spinning on (its default and the server's) and off. With perfect time sharing the two fractions
/// (engine together / engine alone + echo together / echo alone) add up to 1; less is what running side by side
/// costs (preemption of intra-op workers, spinning, cache), which the combined bound does not count.
/// </summary>
internal static class Contention
{
    public static async Task RunAsync(BenchSession session, string modelFile, InputTensor row, ILoadClient echo, int concurrency, int batch, double seconds, (int I, int T) setting)
    {
        foreach (var spinning in new[] { true, false })
        {
            using var engine = new EngineBatchSweep(modelFile, [row], setting.I, setting.T, spinning);
            var label = $"{setting.I}x{setting.T} batch {batch} spinning {(spinning ? "on" : "off")}";
            var fractions = new List<double>();
            for (session.Run = 1; session.Run <= session.Options.Runs; session.Run++)
            {
                var alone = session.Engine(new CellInfo($"contention engine {label}, alone", "engine", "-", setting.I, label), engine, batch, seconds);
                var echoAlone = await session.ClosedAsync(new CellInfo($"contention echo c={concurrency}, alone ({label})", "echo", "grpc", concurrency, "bare echo"), echo, null, seconds).ConfigureAwait(false);
                var echoTask = Task.Run(() => echo.RunClosedAsync(concurrency, TimeSpan.FromSeconds(seconds), session.Options.MaxRequests));
                var together = session.Engine(new CellInfo($"contention engine {label}, beside echo", "engine", "-", setting.I, label + ", echo running"), engine, batch, seconds);
                var echoTogether = await echoTask.ConfigureAwait(false);
                session.Results.Add(new CellInfo($"contention echo c={concurrency}, beside engine ({label})", "echo", "grpc", concurrency, "bare echo, engine running"), echoTogether, new Profile(double.NaN, double.NaN, ThreadPool.ThreadCount, null));
                fractions.Add(together.SamplesPerSecond / alone.SamplesPerSecond + echoTogether.RequestsPerSecond / echoAlone.RequestsPerSecond);
            }
            session.Results.Note(string.Create(CultureInfo.InvariantCulture,
                $"Contention, {label}: engine-together/engine-alone + echo-together/echo-alone per run = {string.Join(" / ", fractions.Select(f => f.ToString("F2", CultureInfo.InvariantCulture)))} (1.00 = perfect time sharing)."));
        }
    }
}
