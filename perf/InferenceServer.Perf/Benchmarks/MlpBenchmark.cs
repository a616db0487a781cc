using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Benchmark 1: the generated MLP (2048 → 2048 → 2048 → 16, memory-bound at batch 1) at concurrency 64. For each
/// instance/thread setting, the server with dynamic batching (<c>mlp_batched_*</c>: max_batch_size 64) and without
/// (<c>mlp_unbatched_*</c>: same model and max_batch_size, no dynamic_batching), the engine in-process at batch sizes
/// 1..64 with the same settings, and the bare echo of the same request. Targets: batched ≥ 4 × unbatched; batched
/// ≥ 0.8 × the combined bound of the best engine rate and the echo.
/// </summary>
internal static class MlpBenchmark
{
    public static async Task RunAsync(BenchOptions o)
    {
        var settings = o.Settings ?? [(1, 2), (2, 1)];
        var concurrency = o.Concurrency ?? [64];
        var protocols = o.Protocols ?? ["grpc"];
        var batches = o.EngineBatches ?? [1, 4, 16, 32, 64];
        var seconds = o.DurationSeconds ?? 4;
        var engineSeconds = o.EngineSeconds ?? 2;
        var delay = o.MaxQueueDelayMicroseconds ?? 0;
        var maxBatch = o.MaxBatchSize ?? 64;
        var preferred = o.PreferredBatchSizes ?? [];
        ModelSettings Batched((int I, int T) s) => new() { MaxBatchSize = maxBatch, DynamicBatching = true, MaxQueueDelayMicroseconds = delay, PreferredBatchSizes = preferred, Instances = s.I, IntraOpThreads = s.T };
        ModelSettings Unbatched((int I, int T) s) => new() { MaxBatchSize = maxBatch, Instances = s.I, IntraOpThreads = s.T };
        string Name(string kind, (int I, int T) s) => $"mlp_{kind}_{s.I}x{s.T}";

        var models = settings.SelectMany(s => o.SkipUnbatched ? new[] { Name("batched", s) } : [Name("batched", s), Name("unbatched", s)]).ToArray();
        var results = new BenchResults("mlp",
            $"Generated MLP FP32 2048 → 2048 → 2048 → 16 (8.4 M weights, symbolic batch), in-process server on loopback. " +
            $"Models: {string.Join("; ", settings.Select(s => $"`{Name("batched", s)}` {Batched(s)}; `{Name("unbatched", s)}` {Unbatched(s)}"))}. " +
            $"Engine: ONNX Runtime in-process with the same instances x intra-op threads, batch sizes {string.Join(",", batches)}, {engineSeconds.ToString(CultureInfo.InvariantCulture)} s each. " +
            $"Load: closed loop, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run); echo = the bare gRPC/REST echo of the same request.");
        var modelFile = "";
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            modelFile = repo.FilePath("mlp.onnx");
            MlpModel.Write(modelFile);
            foreach (var s in settings)
            {
                repo.AddModel(Name("batched", s), modelFile, Batched(s));
                if (!o.SkipUnbatched)
                {
                    repo.AddModel(Name("unbatched", s), modelFile, Unbatched(s));
                }
            }
        }, models).ConfigureAwait(false);

        var row = InputTensor.Create(MlpModel.InputName, "FP32", [1, 2048]);
        var engines = settings.Select(s => new EngineBatchSweep(modelFile, [row], s.I, s.T)).ToArray();
        try
        {
            var engineCells = await session.SweepAsync(engines, batches, engineSeconds, concurrency, protocols, "mlp", models, row, seconds).ConfigureAwait(false);

            var engineBest = Bound.BestEngine(results, engineCells, o.Runs);
            foreach (var c in concurrency)
            {
                foreach (var protocol in protocols)
                {
                    var echo = results.Runs(BenchSession.EchoCell(protocol, c).Name);
                    var bound = engineBest.Zip(echo, (e, x) => Bound.Combined(e, x.RequestsPerSecond)).ToArray();
                    foreach (var s in settings)
                    {
                        var batched = results.Runs($"{Name("batched", s)} {protocol} c={c}");
                        if (!o.SkipUnbatched)
                        {
                            var unbatched = results.Runs($"{Name("unbatched", s)} {protocol} c={c}");
                            results.AddCheck($"1. batching, {s.I}x{s.T}, {protocol} c={c}", "batched / unbatched samples/s",
                                batched.Zip(unbatched, (b, u) => b.SamplesPerSecond / u.SamplesPerSecond), 4, atLeast: true);
                        }
                        results.AddCheck($"1. bound, {s.I}x{s.T}, {protocol} c={c}", "batched / (1 / (1/engine best + 1/echo))",
                            batched.Select((b, r) => b.SamplesPerSecond / bound[r]), 0.8, atLeast: true);
                    }
                    results.Note($"Combined bound ({protocol}, c={c}) per run: " + string.Join(" / ", bound.Select(b => b.ToString("F0", CultureInfo.InvariantCulture))) +
                        " samples/s, from the engine's best rate over every setting and batch size (" + string.Join(" / ", engineBest.Select(b => b.ToString("F0", CultureInfo.InvariantCulture))) +
                        ") and the echo (" + string.Join(" / ", echo.Select(e => e.RequestsPerSecond.ToString("F0", CultureInfo.InvariantCulture))) + ").");
                }
            }
            if (o.Contention)
            {
                await Contention.RunAsync(session, modelFile, row, session.Client(session.EchoConnection, "grpc", "mlp", [row]), concurrency[0], batches.Max(), seconds, (1, 2)).ConfigureAwait(false);
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
