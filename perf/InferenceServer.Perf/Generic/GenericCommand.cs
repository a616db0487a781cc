using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// The generic mode: for each run, concurrency and protocol, a closed-loop measurement of the server next to the same
/// model run directly in ONNX Runtime, then the open-loop cells (--rate); a Markdown table of medians goes to stdout,
/// progress and server logs to stderr.
/// </summary>
internal static class GenericCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine(PerfOptions.Usage());
            return 0;
        }
        PerfOptions options;
        try
        {
            options = PerfOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}\n\n{PerfOptions.Usage()}");
            return 2;
        }

        try
        {
            await using var target = await ServerTarget.StartAsync(options);
            var metadata = await target.WaitForModelAsync(options.Model);
            var inputs = InputTensor.FromMetadata(metadata);
            // Closed-loop cells use the chosen gRPC client (--grpc-client); open-loop cells send one call at a time when
            // due, which only the per-call client (Grpc.Net.Client for gRPC) does.
            var clients = options.Protocols.Select(p => (Closed: target.Connection.CreateLoadClient(p, options.Model, inputs, options.GrpcClient), PerCall: target.CreateClient(p, options.Model, inputs))).ToArray();
            using var engine = EngineBaseline.TryCreate(target.Repository, metadata, inputs, out var noEngine);
            Log($"{target.Description}; model {metadata.Name} version {metadata.Versions.LastOrDefault()}; inputs {string.Join(", ", inputs)}");
            Log(engine is null ? $"no engine baseline: {noEngine}" : $"engine baseline: {engine.ModelPath}");

            var duration = TimeSpan.FromSeconds(options.DurationSeconds);
            var warmup = TimeSpan.FromSeconds(options.WarmupSeconds);
            var loads = options.Concurrency.Select(c => new LoadShape(c, null)).Concat(options.Rates.Select(r => new LoadShape(1, r))).ToArray();
            var report = new Report(
                $"Model `{metadata.Name}` (inputs {string.Join(", ", inputs)}), {(options.InProcess ? "in-process" : "external")} server on loopback; gRPC client `{options.GrpcClient}` (closed loop); " +
                $"{options.Runs} runs x {options.DurationSeconds.ToString(CultureInfo.InvariantCulture)} s per cell, each after {options.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up (and one warm-up pass over all cells first); " +
                (options.Rates.Count > 0 ? "closed loop (c=N clients) and open loop (rate=R requests/s)." : "closed loop."),
                options.Protocols, loads);

            // Run 0 only warms up (JIT tiers, connections, thread pools), once over every cell. Then, run by run, each
            // concurrency measures the engine and then every protocol, so each run's ratios compare measurements taken
            // moments apart on the same (noisy) machine; the open-loop cells follow.
            for (var run = warmup > TimeSpan.Zero ? 0 : 1; run <= options.Runs; run++)
            {
                foreach (var load in loads)
                {
                    var c = load.Concurrency;
                    if (load.Rate is null && engine is { } e && await MeasureAsync(run, load, "engine", d => Task.FromResult(e.Run(c, d, options.MaxRequests))) is { } m)
                    {
                        report.AddEngine(c, m);
                    }
                    foreach (var (closed, perCall) in clients)
                    {
                        Func<TimeSpan, Task<Measurement>> measure = load.Rate is { } rate
                            ? d => OpenLoop.RunAsync(rate, d, options.MaxRequests, options.MaxInFlight, perCall.InferAsync)
                            : d => closed.RunClosedAsync(c, d, options.MaxRequests);
                        if (await MeasureAsync(run, load, closed.Protocol, measure) is { } n)
                        {
                            report.AddServer(closed.Protocol, load, n);
                        }
                    }
                }
            }

            // Warms up, then (except in run 0) measures and logs the measurement.
            async Task<Measurement?> MeasureAsync(int run, LoadShape load, string what, Func<TimeSpan, Task<Measurement>> measure)
            {
                if (warmup > TimeSpan.Zero)
                {
                    await measure(warmup);
                }
                if (run == 0)
                {
                    return null;
                }
                var m = await measure(duration);
                Progress(options, run, load, what, m);
                return m;
            }

            var markdown = report.ToMarkdown();
            Console.Write(markdown);
            if (options.Out is { } file)
            {
                File.WriteAllText(file, markdown);
                Log($"wrote {file}");
            }
            if (options.Json is { } json)
            {
                File.WriteAllText(json, report.ToJson());
                Log($"wrote {json}");
            }
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or TimeoutException or IOException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static void Progress(PerfOptions options, int run, LoadShape load, string what, Measurement m)
    {
        Log(string.Create(CultureInfo.InvariantCulture,
            $"run {run}/{options.Runs}  {load,-12} {what,-11} {Report.Rate(m.RequestsPerSecond),8} req/s  p50 {Report.Ms(m.Percentile(50))} ms  p99 {Report.Ms(m.Percentile(99))} ms  max {Report.Ms(m.MaxMs)} ms  errors {m.ErrorSummary}"));
        if (m.FirstError is { } error)
        {
            Log($"  first error: {error}");
        }
    }

    private static void Log(string line) => Console.Error.WriteLine(line);
}
