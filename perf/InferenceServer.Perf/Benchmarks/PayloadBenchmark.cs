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
            $"Identity model FP32 [batch, n] (`{Model}`: {IdentitySettings(setting)}), one tensor of each size as shape [1, bytes/4], in-process server on loopback; " +
            $"gRPC sends raw_input_contents (answers raw_output_contents), REST sends binary tensor data (asks for binary outputs). " +
            $"Closed loop at concurrency {concurrency}, {o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run); echo = the bare echo of the same request on the same protocol.");
        await using var session = await BenchSession.StartAsync(o, results, repo =>
        {
            var file = repo.FilePath("identity.onnx");
            IdentityModel.Write(file);
            repo.AddModel(Model, file, IdentitySettings(setting));
        }, [Model]).ConfigureAwait(false);

        var tensors = sizes.ToDictionary(b => b, b => InputTensor.Create(IdentityModel.InputName, "FP32", [1, b / 4]));
        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            foreach (var size in sizes)
            {
                foreach (var protocol in protocols)
                {
                    await session.ClosedAsync(Cell("echo", protocol, size, concurrency), session.EchoConnection.CreateClient(protocol, Model, [tensors[size]]), null, seconds).ConfigureAwait(false);
                    await session.ClosedAsync(Cell("server", protocol, size, concurrency), session.Server.CreateClient(protocol, Model, [tensors[size]]), Model, seconds).ConfigureAwait(false);
                }
            }
        }

        foreach (var size in sizes)
        {
            foreach (var protocol in protocols)
            {
                var server = results.Runs(Cell("server", protocol, size, concurrency).Name);
                var echo = results.Runs(Cell("echo", protocol, size, concurrency).Name);
                results.AddCheck($"3. {Size(size)} {protocol} vs echo", "server p50 / echo p50",
                    server.Zip(echo, (s, e) => s.Percentile(50) / e.Percentile(50)), 1.3, atLeast: false);
            }
            if (protocols.Contains("grpc") && protocols.Contains("rest-binary"))
            {
                var grpc = results.Runs(Cell("server", "grpc", size, concurrency).Name);
                var rest = results.Runs(Cell("server", "rest-binary", size, concurrency).Name);
                results.AddCheck($"3. {Size(size)} REST binary vs gRPC", "server rest-binary p50 / server grpc p50",
                    rest.Zip(grpc, (r, g) => r.Percentile(50) / g.Percentile(50)), 1.5, atLeast: false);
            }
        }
        session.Finish(new { setting = $"{setting.Item1}x{setting.Item2}", concurrency, protocols, sizes, seconds, runs = o.Runs });
    }

    private static string Size(int bytes) => (bytes / 1e6).ToString("0.00##", CultureInfo.InvariantCulture) + " MB";

    private static CellInfo Cell(string kind, string protocol, int bytes, int c) =>
        new($"{kind} {protocol} {Size(bytes)} c={c}", kind, protocol, c, $"{bytes} bytes FP32, {(kind == "echo" ? "bare echo" : "identity model")}");
}
