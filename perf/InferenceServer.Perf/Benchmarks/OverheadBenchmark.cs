using System.Globalization;
using System.Text;

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
            $"Identity model FP32 [batch, n] with a tiny tensor [1, 16] (64 bytes), {(o.OutOfProcess ? "server(s) and echo as processes of their own" : "in-process server")} on loopback, {o.Connections} gRPC connection(s) per target, the harness's gRPC client `{o.GrpcClient}`. Models: `identity` {batched}; `identity_unbatched` {unbatched}. " +
            $"Closed loop, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run); echo = the bare echo of the same request.");
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            var file = repo.FilePath("identity.onnx");
            IdentityModel.Write(file);
            repo.AddModel(models[0], file, batched);
            repo.AddModel(models[1], file, unbatched);
        }, models).ConfigureAwait(false);

        var tensor = InputTensor.Create(IdentityModel.InputName, "FP32", [1, 16]);
        var sides = session.Sides;
        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            foreach (var c in concurrency)
            {
                foreach (var protocol in protocols)
                {
                    // With --h2load each target is measured by both clients back to back, the first client alternating run by run.
                    var h2load = o.H2Load && protocol == "grpc";
                    var harnessFirst = session.Run % 2 == 1;
                    var echoClient = session.Client(session.EchoConnection, protocol, models[0], [tensor]);
                    async Task Echo(bool harness)
                    {
                        if (harness)
                        {
                            await session.ClosedAsync(new CellInfo($"echo {protocol} c={c}", "echo", protocol, c, "bare echo of the same request"), echoClient, null, seconds).ConfigureAwait(false);
                        }
                        else if (h2load)
                        {
                            await session.H2LoadAsync(new CellInfo($"h2load echo {protocol} c={c}", "echo", protocol, c, "bare echo, h2load as the client"),
                                (IGrpcRequest)echoClient, session.EchoConnection.GrpcAddress, null, null, seconds).ConfigureAwait(false);
                        }
                    }
                    await Echo(harnessFirst).ConfigureAwait(false);
                    await Echo(!harnessFirst).ConfigureAwait(false);
                    foreach (var model in models)
                    {
                        foreach (var side in Comparison.Order(sides, session.Run))
                        {
                            var client = session.Client(side.Target.Connection, protocol, model, [tensor]);
                            var name = Comparison.Name(side, $"{model} {protocol} c={c}");
                            async Task Server(bool harness)
                            {
                                if (harness)
                                {
                                    await session.ClosedAsync(new CellInfo(name, "server", protocol, c, $"{model} on {side.Name}"), client, model, seconds, side.Target).ConfigureAwait(false);
                                }
                                else if (h2load)
                                {
                                    await session.H2LoadAsync(new CellInfo($"h2load {name}", "server", protocol, c, $"{model} on {side.Name}, h2load as the client"),
                                        (IGrpcRequest)client, side.Target.Connection.GrpcAddress, model, side.Target, seconds).ConfigureAwait(false);
                                }
                            }
                            await Server(harnessFirst).ConfigureAwait(false);
                            await Server(!harnessFirst).ConfigureAwait(false);
                        }
                    }
                }
            }
        }
        static double Rate(Measurement m) => m.RequestsPerSecond;
        foreach (var c in concurrency)
        {
            foreach (var protocol in protocols)
            {
                var echo = results.Runs($"echo {protocol} c={c}");
                foreach (var model in models)
                {
                    foreach (var side in sides)
                    {
                        var name = Comparison.Name(side, $"{model} {protocol} c={c}");
                        results.AddCheck($"4. {name}", "server req/s / echo req/s",
                            results.Runs(name).Zip(echo, (s, e) => s.RequestsPerSecond / e.RequestsPerSecond), 0.4, atLeast: true);
                    }
                }
                if (o.H2Load && protocol == "grpc")
                {
                    var targets = new List<(string, string, string)> { ("echo", $"echo {protocol} c={c}", $"h2load echo {protocol} c={c}") };
                    foreach (var model in models)
                    {
                        foreach (var side in sides)
                        {
                            var name = Comparison.Name(side, $"{model} {protocol} c={c}");
                            targets.Add((name, name, $"h2load {name}"));
                        }
                    }
                    results.Table(Comparison.Table(results, $"**Client cross-check, c={c}:** the same target measured by this harness and by h2load back to back in each run ({o.Connections} connection(s) each).",
                        "harness", "h2load", "req/s", Rate, targets));
                    var echoH2 = results.Runs($"h2load echo {protocol} c={c}");
                    var rows = new StringBuilder("| server / echo | harness per run | harness median (min–max; IQR) | h2load per run | h2load median (min–max; IQR) |\n|---|---|---|---|---|\n");
                    foreach (var model in models)
                    {
                        foreach (var side in sides)
                        {
                            var name = Comparison.Name(side, $"{model} {protocol} c={c}");
                            var h = results.Runs(name).Zip(echo, (s, e) => s.RequestsPerSecond / e.RequestsPerSecond).ToArray();
                            var x = results.Runs($"h2load {name}").Zip(echoH2, (s, e) => s.RequestsPerSecond / e.RequestsPerSecond).ToArray();
                            rows.Append(CultureInfo.InvariantCulture, $"| {name} | {string.Join(" / ", h.Select(BenchResults.Ratio))} | {Comparison.Spread(h)} | {string.Join(" / ", x.Select(BenchResults.Ratio))} | {Comparison.Spread(x)} |\n");
                        }
                    }
                    results.Table($"**Server / echo by client, c={c}** (each client's server cell over its own echo cell, same run):\n\n{rows}");
                    if (o.OutOfProcess)
                    {
                        // What the target itself spends per request, whichever client drives it: the client's own cost
                        // (paid on the same two cores) moves the rates and their ratios, not this.
                        var cpuRows = new StringBuilder("| target CPU µs/request | harness per run | harness median (min–max; IQR) | h2load per run | h2load median (min–max; IQR) |\n|---|---|---|---|---|\n");
                        foreach (var (label, harnessCell, h2loadCell) in targets)
                        {
                            var h = results.Profiles(harnessCell).Select(p => p.TargetCpuMicrosecondsPerRequest ?? double.NaN).ToArray();
                            var x = results.Profiles(h2loadCell).Select(p => p.TargetCpuMicrosecondsPerRequest ?? double.NaN).ToArray();
                            cpuRows.Append(CultureInfo.InvariantCulture, $"| {label} | {string.Join(" / ", h.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} | {Comparison.Spread(h)} | {string.Join(" / ", x.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} | {Comparison.Spread(x)} |\n");
                        }
                        results.Table($"**The target's own CPU per request by client, c={c}** (its process's CPU time over the cell / the requests it counted):\n\n{cpuRows}");
                    }
                }
                if (sides.Count == 2)
                {
                    results.Table(Comparison.Table(results, $"**A/B, c={c}:** baseline and current alternating (A/B in odd runs, B/A in even ones); {sides[0].Target.Description} vs {sides[1].Target.Description}.",
                        "baseline", "current", "req/s", Rate,
                        models.SelectMany(m => new[] { "", "h2load " }.Select(prefix => ($"{prefix}{m} {protocol} c={c}", $"{prefix}baseline {m} {protocol} c={c}", $"{prefix}current {m} {protocol} c={c}")))));
                }
            }
        }
        session.Finish(new { setting = $"{setting.Item1}x{setting.Item2}", concurrency, protocols, seconds, runs = o.Runs, connections = o.Connections, o.Baseline, outOfProcess = o.OutOfProcess, h2load = o.H2Load });
    }
}
