using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Benchmark 3: FP32 tensors of a given byte size (default 602,112 and 7,120,000 bytes) through the identity model
/// over gRPC (<c>raw_input_contents</c>) and REST (binary tensor data), next to the bare echo of the same request on the
/// same protocol, at concurrency 1. Targets: server p50 ≤ 1.3 × echo p50 (each protocol); REST binary p50 ≤ 1.5 × gRPC p50.
/// </summary>
internal static class PayloadBenchmark
{
    public const string Model = "identity";

    public static ModelSettings IdentitySettings((int I, int T) s) =>
        new() { MaxBatchSize = 64, DynamicBatching = true, Instances = s.I, IntraOpThreads = s.T };

    public static async Task RunAsync(BenchOptions o)
    {
        var setting = (o.Settings ?? [(1, 2)])[0];
        var concurrency = (o.Concurrency ?? [1])[0];
        var protocols = o.Protocols ?? ["grpc", "rest-binary"];
        var sizes = o.Bytes ?? [602_112, 7_120_000];
        var seconds = o.DurationSeconds ?? 4;
        var results = new BenchResults("payload",
            $"Identity model FP32 [batch, n] (`{Model}`: {IdentitySettings(setting)}), one tensor of each size as shape [1, bytes/4], {(o.OutOfProcess ? "server(s) and echo as processes of their own" : "in-process server")} on loopback, the harness's gRPC client `{o.GrpcClient}`; " +
            $"gRPC sends raw_input_contents (answers raw_output_contents), REST sends binary tensor data (asks for binary outputs). " +
            $"Closed loop at concurrency {concurrency}, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run); echo = the bare echo of the same request on the same protocol.");
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            var file = repo.FilePath("identity.onnx");
            IdentityModel.Write(file);
            repo.AddModel(Model, file, IdentitySettings(setting));
        }, [Model]).ConfigureAwait(false);

        var tensors = sizes.ToDictionary(b => b, b => InputTensor.Create(IdentityModel.InputName, "FP32", [1, b / 4]));
        var sides = session.Sides;
        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            foreach (var size in sizes)
            {
                foreach (var protocol in protocols)
                {
                    var h2load = o.H2Load && protocol == "grpc";
                    var echoClient = session.Client(session.EchoConnection, protocol, Model, [tensors[size]]);
                    await session.ClosedAsync(Cell("echo", protocol, size, concurrency), echoClient, null, seconds).ConfigureAwait(false);
                    if (h2load)
                    {
                        await session.H2LoadAsync(Cell("h2load echo", protocol, size, concurrency), (IGrpcRequest)echoClient, session.EchoConnection.GrpcAddress, null, null, seconds).ConfigureAwait(false);
                    }
                    foreach (var side in Comparison.Order(sides, session.Run))
                    {
                        var client = session.Client(side.Target.Connection, protocol, Model, [tensors[size]]);
                        var cell = Cell(Comparison.Name(side, "server"), protocol, size, concurrency);
                        await session.ClosedAsync(cell, client, Model, seconds, side.Target).ConfigureAwait(false);
                        if (h2load)
                        {
                            await session.H2LoadAsync(Cell($"h2load {Comparison.Name(side, "server")}", protocol, size, concurrency), (IGrpcRequest)client,
                                side.Target.Connection.GrpcAddress, Model, side.Target, seconds).ConfigureAwait(false);
                        }
                    }
                }
            }
        }

        static double P50(Measurement m) => m.Percentile(50);
        foreach (var size in sizes)
        {
            foreach (var protocol in protocols)
            {
                var echo = results.Runs(Cell("echo", protocol, size, concurrency).Name);
                foreach (var side in sides)
                {
                    var server = results.Runs(Cell(Comparison.Name(side, "server"), protocol, size, concurrency).Name);
                    results.AddCheck($"3. {Size(size)} {protocol} {(side.Name == "server" ? "" : side.Name + " ")}vs echo", "server p50 / echo p50",
                        server.Zip(echo, (s, e) => s.Percentile(50) / e.Percentile(50)), 1.3, atLeast: false);
                }
            }
            if (protocols.Contains("grpc") && protocols.Contains("rest-binary"))
            {
                foreach (var side in sides)
                {
                    var grpc = results.Runs(Cell(Comparison.Name(side, "server"), "grpc", size, concurrency).Name);
                    var rest = results.Runs(Cell(Comparison.Name(side, "server"), "rest-binary", size, concurrency).Name);
                    results.AddCheck($"3. {Size(size)} {(side.Name == "server" ? "" : side.Name + " ")}REST binary vs gRPC", "server rest-binary p50 / server grpc p50",
                        rest.Zip(grpc, (r, g) => r.Percentile(50) / g.Percentile(50)), 1.5, atLeast: false);
                }
            }
        }
        if (o.H2Load && protocols.Contains("grpc"))
        {
            results.Table(Comparison.Table(results, "**Client cross-check:** the same target measured by this harness and by h2load back to back in each run.",
                "harness", "h2load", "p50 ms", P50,
                sizes.SelectMany(size => new[] { "echo" }.Concat(sides.Select(side => Comparison.Name(side, "server")))
                    .Select(kind => ($"{kind} grpc {Size(size)}", Cell(kind, "grpc", size, concurrency).Name, Cell($"h2load {kind}", "grpc", size, concurrency).Name)))));
        }
        if (sides.Count == 2)
        {
            results.Table(Comparison.Table(results, $"**A/B:** baseline and current alternating (A/B in odd runs, B/A in even ones); {sides[0].Target.Description} vs {sides[1].Target.Description}.",
                "baseline", "current", "p50 ms", P50,
                sizes.SelectMany(size => protocols.SelectMany(protocol => new[] { "", "h2load " }.Select(prefix =>
                    ($"{prefix}{protocol} {Size(size)}", Cell($"{prefix}baseline server", protocol, size, concurrency).Name, Cell($"{prefix}current server", protocol, size, concurrency).Name))))));
        }
        session.Finish(new { setting = $"{setting.Item1}x{setting.Item2}", concurrency, protocols, sizes, seconds, runs = o.Runs, connections = o.Connections, o.Baseline, outOfProcess = o.OutOfProcess, h2load = o.H2Load });
    }

    private static string Size(int bytes) => (bytes / 1e6).ToString("0.00##", CultureInfo.InvariantCulture) + " MB";

    private static CellInfo Cell(string kind, string protocol, int bytes, int c) =>
        new($"{kind} {protocol} {Size(bytes)} c={c}", kind.EndsWith("echo", StringComparison.Ordinal) ? "echo" : "server", protocol, c, $"{bytes} bytes FP32, {(kind.EndsWith("echo", StringComparison.Ordinal) ? "bare echo" : "identity model")}{(kind.StartsWith("h2load", StringComparison.Ordinal) ? ", h2load as the client" : "")}");
}
