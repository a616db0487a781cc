using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Benchmark 2: ResNet-50 (<c>light_resnet50.onnx</c> with a symbolic batch dimension, rewritten into the temporary
/// repository) served with max_batch_size 8 and dynamic batching at concurrency 8, against the combined bound of the
/// engine's best rate over batch sizes 1..8 (same instance/thread setting) and the echo of the same 602,112-byte
/// request. Target: ≥ 0.9 of the bound.
/// </summary>
internal static class Resnet50Benchmark
{
    private const string InputName = "gpu_0/data_0";

    public static async Task RunAsync(BenchOptions o)
    {
        var settings = o.Settings ?? [(1, 2), (2, 1)];
        var concurrency = o.Concurrency ?? [8];
        var protocols = o.Protocols ?? ["grpc"];
        var batches = o.EngineBatches ?? [1, 2, 4, 8];
        var seconds = o.DurationSeconds ?? 6;
        var engineSeconds = o.EngineSeconds ?? 4;
        var delay = o.MaxQueueDelayMicroseconds ?? 0;
        var maxBatch = o.MaxBatchSize ?? 8;
        var preferred = o.PreferredBatchSizes ?? [];
        ModelSettings Config((int I, int T) s) => new() { MaxBatchSize = maxBatch, DynamicBatching = true, MaxQueueDelayMicroseconds = delay, PreferredBatchSizes = preferred, Instances = s.I, IntraOpThreads = s.T };
        string Name((int I, int T) s) => $"resnet50_{s.I}x{s.T}";

        var source = Path.GetFullPath(Path.Combine(o.SharedDir, "models", "onnx", "light", "light_resnet50.onnx"));
        if (!File.Exists(source))
        {
            throw new ArgumentException($"{source} not found; point --shared-dir (or INFERENCE_SHARED_DIR) at the shared data folder");
        }
        var results = new BenchResults("resnet50",
            $"ResNet-50 (`light_resnet50.onnx`, constant weights, batch dimension made symbolic), input FP32 [1,3,224,224] (602,112 bytes), in-process server on loopback. " +
            $"Models: {string.Join("; ", settings.Select(s => $"`{Name(s)}` {Config(s)}"))}. " +
            $"Engine: ONNX Runtime in-process, same instances x intra-op threads, batch sizes {string.Join(",", batches)}, {engineSeconds.ToString(CultureInfo.InvariantCulture)} s each. " +
            $"Load: closed loop, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run).");
        var modelFile = "";
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            modelFile = repo.FilePath("resnet50.onnx");
            BenchSession.Log(Resnet50Batch.Rewrite(source, modelFile));
            foreach (var s in settings)
            {
                repo.AddModel(Name(s), modelFile, Config(s));
            }
        }, settings.Select(Name).ToArray()).ConfigureAwait(false);

        var row = InputTensor.Create(InputName, "FP32", [1, 3, 224, 224]);
        var engines = settings.Select(s => new EngineBatchSweep(modelFile, [row], s.I, s.T)).ToArray();
        try
        {
            var engineCells = await session.SweepAsync(engines, batches, engineSeconds, concurrency, protocols, "resnet50", settings.Select(Name).ToArray(), row, seconds).ConfigureAwait(false);

            var engineBest = Bound.BestEngine(results, engineCells, o.Runs);
            foreach (var c in concurrency)
            {
                foreach (var protocol in protocols)
                {
                    var echo = results.Runs(BenchSession.EchoCell(protocol, c).Name);
                    var bound = engineBest.Zip(echo, (e, x) => Bound.Combined(e, x.RequestsPerSecond)).ToArray();
                    foreach (var s in settings)
                    {
                        var server = results.Runs($"{Name(s)} {protocol} c={c}");
                        results.AddCheck($"2. bound, {s.I}x{s.T}, {protocol} c={c}", "server / (1 / (1/engine best + 1/echo))",
                            server.Select((m, r) => m.SamplesPerSecond / bound[r]), 0.9, atLeast: true);
                    }
                    results.Note($"Combined bound ({protocol}, c={c}) per run: " + string.Join(" / ", bound.Select(b => b.ToString("F1", CultureInfo.InvariantCulture))) +
                        " samples/s, from the engine's best rate over every setting and batch size (" + string.Join(" / ", engineBest.Select(b => b.ToString("F1", CultureInfo.InvariantCulture))) +
                        ") and the echo (" + string.Join(" / ", echo.Select(e => e.RequestsPerSecond.ToString("F0", CultureInfo.InvariantCulture))) + ").");
                }
            }
            session.Finish(new { settings = settings.Select(s => $"{s.I}x{s.T}"), concurrency, protocols, batches, seconds, engineSeconds, max_queue_delay_us = delay, max_batch_size = maxBatch, preferred_batch_sizes = preferred, runs = o.Runs });
        }
        finally
        {
            foreach (var e in engines)
            {
                e.Dispose();
            }
        }
    }
}
