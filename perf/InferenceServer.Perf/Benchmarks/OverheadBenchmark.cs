using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Benchmark 4: the server's per-request overhead: the identity model with a tiny FP32 tensor ([1, 16], 64 bytes) over
/// gRPC at concurrency 64, with dynamic batching (<c>identity</c>) and without (<c>identity_unbatched</c>), next to the
/// bare echo of the same request. Target: server req/s ≥ 0.4 × echo req/s.
/// </summary>
internal static class OverheadBenchmark
{
    public static async Task RunAsync(BenchOptions o)
    {
        var setting = (o.Settings ?? [(1, 2)])[0];
        var concurrency = o.Concurrency ?? [64];
        var protocols = o.Protocols ?? ["grpc"];
        var seconds = o.DurationSeconds ?? 4;
        var batched = PayloadBenchmark.IdentitySettings(setting);
        var unbatched = batched with { DynamicBatching = false };
        string[] models = [PayloadBenchmark.Model, "identity_unbatched"];
        var results = new BenchResults("overhead",
            $"Identity model FP32 [batch, n] with a tiny tensor [1, 16] (64 bytes), in-process server on loopback. Models: `identity` {batched}; `identity_unbatched` {unbatched}. " +
            $"Closed loop, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run); echo = the bare echo of the same request.");
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            var file = repo.FilePath("identity.onnx");
            IdentityModel.Write(file);
            repo.AddModel(models[0], file, batched);
            repo.AddModel(models[1], file, unbatched);
        }, models).ConfigureAwait(false);

        var tensor = InputTensor.Create(IdentityModel.InputName, "FP32", [1, 16]);
        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            foreach (var c in concurrency)
            {
                foreach (var protocol in protocols)
                {
                    await session.ClosedAsync(new CellInfo($"echo {protocol} c={c}", "echo", protocol, c, "bare echo of the same request"),
                        session.EchoConnection.CreateClient(protocol, models[0], [tensor]), null, seconds).ConfigureAwait(false);
                    foreach (var model in models)
                    {
                        await session.ClosedAsync(new CellInfo($"{model} {protocol} c={c}", "server", protocol, c, model),
                            session.Server.CreateClient(protocol, model, [tensor]), model, seconds).ConfigureAwait(false);
                    }
                }
            }
        }
        foreach (var c in concurrency)
        {
            foreach (var protocol in protocols)
            {
                var echo = results.Runs($"echo {protocol} c={c}");
                foreach (var model in models)
                {
                    results.AddCheck($"4. {model} {protocol} c={c}", "server req/s / echo req/s",
                        results.Runs($"{model} {protocol} c={c}").Zip(echo, (s, e) => s.RequestsPerSecond / e.RequestsPerSecond), 0.4, atLeast: true);
                }
            }
        }
        session.Finish(new { setting = $"{setting.Item1}x{setting.Item2}", concurrency, protocols, seconds, runs = o.Runs });
    }
}
