using System.Globalization;
using InferenceServer.Perf;

// Load generator and engine baseline: for each run, concurrency and protocol, a closed-loop measurement of the
// server next to the same model run directly in ONNX Runtime; a Markdown table of medians goes to stdout,
// progress and server logs to stderr.
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
    var clients = options.Protocols.Select(p => target.CreateClient(p, options.Model, inputs)).ToArray();
    using var engine = EngineBaseline.TryCreate(target.Repository, metadata, inputs, out var noEngine);
    Log($"{target.Description}; model {metadata.Name} version {metadata.Versions.LastOrDefault()}; inputs {string.Join(", ", inputs)}");
    Log(engine is null ? $"no engine baseline: {noEngine}" : $"engine baseline: {engine.ModelPath}");

    var duration = TimeSpan.FromSeconds(options.DurationSeconds);
    var warmup = TimeSpan.FromSeconds(options.WarmupSeconds);
    var report = new Report(
        $"Model `{metadata.Name}` (inputs {string.Join(", ", inputs)}), {(options.InProcess ? "in-process" : "external")} server on loopback; " +
        $"{options.Runs} runs x {options.DurationSeconds.ToString(CultureInfo.InvariantCulture)} s per cell, each after {options.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up (and one warm-up pass over all cells first); closed loop.",
        options.Protocols, options.Concurrency);

    // Run 0 only warms up (JIT tiers, connections, thread pools), once over every cell. Then, run by run, each
    // concurrency measures the engine and then every protocol, so each run's ratios compare measurements taken
    // moments apart on the same (noisy) machine.
    for (var run = warmup > TimeSpan.Zero ? 0 : 1; run <= options.Runs; run++)
    {
        foreach (var c in options.Concurrency)
        {
            if (engine is { } e && await MeasureAsync(run, c, "engine", d => Task.FromResult(e.Run(c, d, options.MaxRequests))) is { } m)
            {
                report.AddEngine(c, m);
            }
            foreach (var client in clients)
            {
                if (await MeasureAsync(run, c, client.Protocol, d => LoadLoop.RunAsync(c, d, options.MaxRequests, client.InferAsync)) is { } n)
                {
                    report.AddServer(client.Protocol, c, n);
                }
            }
        }
    }

    // Warms up, then (except in run 0) measures and logs the measurement.
    async Task<Measurement?> MeasureAsync(int run, int concurrency, string what, Func<TimeSpan, Task<Measurement>> measure)
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
        Progress(run, concurrency, what, m);
        return m;
    }

    var markdown = report.ToMarkdown();
    Console.Write(markdown);
    if (options.Out is { } file)
    {
        File.WriteAllText(file, markdown);
        Log($"wrote {file}");
    }
    return 0;
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException or TimeoutException or IOException or NotSupportedException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

void Progress(int run, int concurrency, string what, Measurement m)
{
    Log(string.Create(CultureInfo.InvariantCulture,
        $"run {run}/{options.Runs}  c={concurrency,-3} {what,-11} {Report.Rate(m.RequestsPerSecond),8} req/s  p50 {Report.Ms(m.Percentile(50))} ms  p99 {Report.Ms(m.Percentile(99))} ms  errors {m.Errors}"));
    if (m.FirstError is { } error)
    {
        Log($"  first error: {error}");
    }
}

static void Log(string line) => Console.Error.WriteLine(line);
