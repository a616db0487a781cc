using System.Globalization;
using System.Text;
using InferenceServer.Protocol;
using TorchSharp;

namespace InferenceServer.Perf;

/// <summary>
/// Text generation: <c>shakespeare.pt.zip</c> (a character-level window language model, [B, 32] INT64 → [B, 32, 65]
/// FP32) decoded greedily by raw in-process TorchSharp loops at batch sizes 1..64 in every configuration of parallel
/// loops x intra-op threads that fits the cores (the baseline is the best of them), and served by the real server as a
/// generative model (continuous batching) to N concurrent streaming clients over OpenAI's <c>POST /v1/completions</c>
/// (HTTP/1.1, server-sent events). Targets: server tokens/s at 16 streams ≥ 0.85 × the raw loop's best; at 16 streams
/// ≥ 1.8 × at 1 stream; time to first token p50 at 16 streams ≤ 10 ms.
/// </summary>
internal static class GenerateBenchmark
{
    public const string Model = "shakespeare";
    public const string Vocabulary = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    private const int Window = 32;
    private const int TargetStreams = 16;

    /// <summary>The prompts the streams (and the raw loop's rows) take in turn.</summary>
    private static readonly string[] Prompts =
    [
        "ROMEO:\nBut soft, what light through yonder window breaks?",
        "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?",
        "First Citizen:\nBefore we proceed any further, hear me speak.",
        "KING RICHARD III:\nNow is the winter of our discontent",
    ];

    private static readonly string Config = """
        backend: pytorch
        max_batch_size: 64
        input:
          - {name: tokens, data_type: TYPE_INT64, dims: [32]}
        output:
          - {name: logits, data_type: TYPE_FP32, dims: [32, 65]}
        generation:
          tokenizer:
            kind: characters
            vocabulary: "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
          max_running_sequences: 64
          max_waiting_sequences: 256
        """;

    public static async Task RunAsync(BenchOptions o)
    {
        var concurrency = o.Concurrency ?? [1, 4, 16, 64];
        var batches = o.EngineBatches ?? [1, 4, 16, 64];
        var seconds = o.DurationSeconds ?? 6;
        var engineSeconds = o.EngineSeconds ?? 4;
        var maxTokens = o.MaxTokens ?? 128;
        // The issue's configuration sets no threads (libtorch's default); --settings IxT adds I instances (decode loops)
        // and parameters.intra_op_num_threads: T.
        if (o.Settings is { } settings && settings.Count != 1)
        {
            throw new ArgumentException("generate: --settings takes one setting IxT (I decode loops, T intra-op threads)");
        }
        // Default: the README's CPU configuration, one decode loop per core with one intra-op thread each.
        var threads = o.Settings?[0].T ?? 1;
        var instances = o.Settings?[0].I ?? Environment.ProcessorCount;
        var serverSetting = new LoopSetting(instances, threads);
        // The baseline is the engine at its best on this machine, so the raw loop is swept over its configurations,
        // the server's own among them: comparing with one configuration the server does not use flatters the server.
        var rawSettings = o.RawSettings?.Select(s => new LoopSetting(s.I, s.T)).Append(serverSetting).Distinct().ToArray()
            ?? LoopSetting.Sweep(Environment.ProcessorCount, serverSetting);
        var config = Config + $"\nparameters:\n  intra_op_num_threads: \"{threads}\"\n";
        if (instances > 1)
        {
            config += $"\ninstance_group:\n  - {{count: {instances}, kind: KIND_CPU}}\n";
        }
        var modelFile = Path.GetFullPath(Path.Combine(o.SharedDir, "models", "torchscript", "shakespeare.pt.zip"));
        if (!File.Exists(modelFile))
        {
            throw new ArgumentException($"{modelFile} not found; point --shared-dir (or INFERENCE_SHARED_DIR) at the shared data folder");
        }
        await CompletionEvent.SelfCheckAsync().ConfigureAwait(false);

        var results = new BenchResults("generate",
            $"Text generation with `shakespeare.pt.zip` (character-level transformer, window 32, vocabulary 65), greedy, {maxTokens} tokens per completion. " +
            $"Raw loop: TorchSharp in-process, L parallel decode loops (a thread and a module each) x T libtorch intra-op threads, L x T = {string.Join(", ", rawSettings)}; " +
            $"each loop steps its share of B rows in flight, `forward` on [rows, 32] INT64 + argmax of `output[:, -1, :]` per step, B = {string.Join(",", batches)}, {engineSeconds.ToString(CultureInfo.InvariantCulture)} s each " +
            "(req/s = steps/s over all loops, samples/s = tokens/s summed over the loops in one window, latency = one loop's step); the baseline is the best cell. " +
            $"Server: in-process on loopback, the model served as a generative model (continuous batching, max_running_sequences 64); N = {string.Join(",", concurrency)} closed-loop streams, " +
            "each `POST /v1/completions` with `stream: true` and `stream_options.include_usage` over HTTP/1.1 (one HttpClient, one connection per stream), " +
            "the server-sent events read as they arrive (req/s = completions sent in the window, samples/s = generated tokens/s counted as they arrive, latency = time to first token). " +
            $"{o.Runs} runs x {seconds.ToString(CultureInfo.InvariantCulture)} s per server cell after {o.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s of warm-up ({o.FirstWarmupSeconds.ToString(CultureInfo.InvariantCulture)} s before a cell's first run), the streams running through both.");
        await using var session = await BenchSession.StartAsync(o, results, repo => repo.AddModel(Model, modelFile, "model.pt", config), [Model],
            ["--model-control-mode", "explicit", "--load-model", Model]).ConfigureAwait(false);
        using var raw = new ParallelDecodeLoops(modelFile, Window, Prompts.Select(Encode).ToArray(), maxTokens, rawSettings.Max(s => s.Loops));
        using var client = new CompletionClient(session.Server.Connection.HttpAddress, Model, Math.Max(64, concurrency.Max()));
        using var metrics = new HttpClient { BaseAddress = session.Server.Metrics, Timeout = TimeSpan.FromSeconds(10) };
        // libtorch's intra-op threads are per process (the model's load set them, if its configuration says so); OpenMP's
        // wait policy decides whether those threads spin between parallel regions, which matters on two shared cores.
        var threading = $"server: {instances} decode loop(s), libtorch intra-op threads {torch.get_num_threads()} (parameters.intra_op_num_threads {threads}); raw loop: loops x threads {string.Join(", ", rawSettings)} on {Environment.ProcessorCount} cores; OMP_WAIT_POLICY {Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "unset"}";
        BenchSession.Log(threading);
        results.Note($"Threading: {threading}.");

        await CompareWithRawAsync(client, raw.First, results, maxTokens).ConfigureAwait(false);

        var warmed = new HashSet<int>();
        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            // The raw loop runs with the model unloaded: the server's decode thread, and with it its OpenMP team, gone.
            await ModelControl.UnloadAsync(session, Model).ConfigureAwait(false);
            // Each raw setting sets libtorch's (per-process) thread count for its loops; the model's is restored after.
            var serverThreads = torch.get_num_threads();
            foreach (var setting in rawSettings)
            {
                foreach (var b in batches)
                {
                    var cell = new CellInfo(RawCell(setting, b), "engine", "-", b, $"raw TorchSharp greedy decode, {setting.Loops} loop(s) x {setting.Threads} thread(s), {b} rows in flight");
                    if (o.WarmupSeconds > 0)
                    {
                        raw.Run(setting, b, TimeSpan.FromSeconds(Math.Min(o.WarmupSeconds, engineSeconds)), o.MaxRequests);
                    }
                    var cpu = CpuSample.Take();
                    var gc = GcDelta.Take();
                    var m = raw.Run(setting, b, TimeSpan.FromSeconds(engineSeconds), o.MaxRequests);
                    var used = CpuSample.Take().Since(cpu);
                    session.Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Gc = GcDelta.Since(gc) });
                }
            }
            torch.set_num_threads(serverThreads);
            await ModelControl.LoadAsync(session, Model).ConfigureAwait(false);
            foreach (var c in concurrency)
            {
                var cell = new CellInfo(ServerCell(c), "server", "openai-sse", c, $"{c} concurrent stream{(c == 1 ? "" : "s")} of completions");
                var warmup = warmed.Add(c) ? Math.Max(o.WarmupSeconds, o.FirstWarmupSeconds) : o.WarmupSeconds;
                InferenceServer.Protocol.ModelStatistics? before = null, after = null;
                TokenMetrics? metricsBefore = null, metricsAfter = null;
                var cpu = default(CpuSample);
                var used = (Machine: double.NaN, Process: double.NaN);
                var gc = GcDelta.Take();
                GcDelta? gcs = null;
                var m = await CompletionLoop.RunAsync(client, Prompts, maxTokens, c, TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(seconds), o.MaxRequests,
                    opened: async () =>
                    {
                        before = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, Model).ConfigureAwait(false);
                        metricsBefore = await TokenMetrics.ScrapeAsync(metrics, Model).ConfigureAwait(false);
                        cpu = CpuSample.Take();
                        gc = GcDelta.Take();
                    },
                    closed: async () =>
                    {
                        used = CpuSample.Take().Since(cpu);
                        gcs = GcDelta.Since(gc);
                        after = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, Model).ConfigureAwait(false);
                        metricsAfter = await TokenMetrics.ScrapeAsync(metrics, Model).ConfigureAwait(false);
                    }).ConfigureAwait(false);
                session.Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, ServerStatsDelta.Between(before, after))
                {
                    Gc = gcs,
                    Detail = TokenMetrics.Describe(metricsBefore, metricsAfter),
                });
            }
        }

        var sweep = new GenerateRawSweep(results, rawSettings, batches, serverSetting, o.Runs);
        sweep.AddTable();
        AddServerTable(results, sweep, concurrency, o.Runs);
        AddChecks(results, sweep, concurrency);
        session.Finish(new { model = modelFile, threading, concurrency, batches, raw_settings = rawSettings.Select(s => s.ToString()).ToArray(), seconds, engineSeconds, max_tokens = maxTokens, runs = o.Runs, prompts = Prompts });
    }

    /// <summary>A raw cell's name: <c>raw LxT batch B</c>, B the rows in flight over all L loops.</summary>
    internal static string RawCell(LoopSetting setting, int batch) => $"raw {setting} batch {batch}";

    private static string ServerCell(int streams) => $"{Model} c={streams}";

    private static long[] Encode(string text) => text.Select(ch => (long)Vocabulary.IndexOf(ch, StringComparison.Ordinal)).ToArray();

    /// <summary>
    /// One completion before measuring: the server's greedy text must be the raw loop's (both batch 1), which also
    /// checks the client's parsing end to end. A server without the endpoint stops the benchmark here.
    /// </summary>
    private static async Task CompareWithRawAsync(CompletionClient client, GreedyDecodeLoop raw, BenchResults results, int maxTokens)
    {
        var text = new StringBuilder();
        CompletionOutcome outcome;
        try
        {
            using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
            outcome = await client.StreamAsync(client.Body(Prompts[0], maxTokens), null, text, timeout.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new InvalidOperationException($"the server's POST /v1/completions failed: {e.Message}", e);
        }
        catch (OperationCanceledException e)
        {
            throw new TimeoutException($"the first completion ({maxTokens} tokens) did not finish within {LoadLoop.RequestTimeout.TotalSeconds} s " +
                $"({text.Length} characters arrived): the server decodes far slower than it should; see the server's /metrics (inference_time_per_output_token_seconds)", e);
        }
        catch (CompletionStreamException e)
        {
            throw new InvalidOperationException($"the server's POST /v1/completions stream is not as expected ({e.Status}): {e.Message}", e);
        }
        var expected = new string(raw.Greedy(Encode(Prompts[0]), maxTokens).Select(id => Vocabulary[(int)id]).ToArray());
        var got = text.ToString();
        var difference = Enumerable.Range(0, Math.Min(got.Length, expected.Length)).FirstOrDefault(i => got[i] != expected[i], -1);
        var same = got == expected;
        var line = same
            ? $"Check: the server's greedy completion of the first prompt equals the raw loop's ({got.Length} characters; usage: {outcome.PromptTokens} prompt, {outcome.UsageTokens} completion tokens; finish_reason {outcome.FinishReason})."
            : $"Check: the server's greedy completion of the first prompt DIFFERS from the raw loop's (first difference at character {(difference < 0 ? Math.Min(got.Length, expected.Length) : difference)}; server {got.Length} characters, raw {expected.Length}; usage {outcome.UsageTokens}): server `{Escape(got)}`, raw `{Escape(expected)}`.";
        BenchSession.Log(line);
        results.Note(line);
    }

    private static string Escape(string text) => text.Replace("\n", "\\n", StringComparison.Ordinal);

    private static void AddServerTable(BenchResults results, GenerateRawSweep sweep, IReadOnlyList<int> concurrency, int runs)
    {
        var s = new StringBuilder();
        s.AppendLine($"Server, streaming completions (medians over the runs; server / raw {sweep.Server}: the median of the per-run ratios to the raw loops in the server's own configuration with as many rows in flight as streams):").AppendLine();
        s.AppendLine($"| streams | tokens/s | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | TPOT p50 ms | completions/s | server / raw {sweep.Server} same rows | errors |");
        s.AppendLine("|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        foreach (var c in concurrency)
        {
            var r = results.Runs(ServerCell(c));
            var rawCell = RawCell(sweep.Server, c);
            var ratio = results.Has(rawCell)
                ? BenchResults.Ratio(BenchResults.Median(r.Zip(results.Runs(rawCell), (x, y) => x.SamplesPerSecond / y.SamplesPerSecond)))
                : "n/a";
            var errors = r.SelectMany(m => m.ErrorsByStatus).GroupBy(e => e.Key).Select(g => $"{g.Key}={g.Sum(e => e.Value)}").ToArray();
            s.AppendLine(Invariant($"| {c} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {Median(r, m => m.Percentile(50)):F2} | {Median(r, m => m.Percentile(90)):F2} | {Median(r, m => m.Percentile(99)):F2} | {Median(r, m => Measurement.Percentile(m.TimePerOutputTokenMs, 50)):F3} | {Median(r, m => m.RequestsPerSecond):F1} | {ratio} | {(errors.Length == 0 ? "0" : string.Join(", ", errors))} |"));
        }
        s.AppendLine().Append(Invariant($"TTFT: request sent → first non-empty text; TPOT: (last − first text) / (tokens − 1) per completion; both over the completions sent in the window ({runs} runs)."));
        results.Table(s.ToString());
    }

    private static void AddChecks(BenchResults results, GenerateRawSweep sweep, IReadOnlyList<int> concurrency)
    {
        if (!concurrency.Contains(TargetStreams) || !concurrency.Contains(1))
        {
            results.Note($"Checks skipped: they compare {TargetStreams} streams with 1 stream, and --concurrency did not include both.");
            return;
        }
        var target = results.Runs(ServerCell(TargetStreams));
        var rawBest = sweep.BestPerRun();
        results.AddCheck($"generate: server / raw, {TargetStreams} streams", $"server tokens/s at {TargetStreams} streams / raw loops' best tokens/s (max over loops x threads and batch sizes)",
            target.Select((m, run) => m.SamplesPerSecond / rawBest[run]), 0.85, atLeast: true);
        results.AddCheck($"generate: scaling, {TargetStreams} / 1 streams", $"server tokens/s at {TargetStreams} streams / at 1 stream",
            target.Zip(results.Runs(ServerCell(1)), (x, y) => x.SamplesPerSecond / y.SamplesPerSecond), 1.8, atLeast: true);
        results.AddCheck($"generate: TTFT p50, {TargetStreams} streams", "time to first token p50, seconds (absolute)",
            target.Select(m => m.Percentile(50) / 1000), 0.010, atLeast: false);
        if (results.Has(RawCell(sweep.Server, TargetStreams)))
        {
            var ceiling = Enumerable.Range(0, target.Count).Select(run => sweep.Rate(sweep.Server, TargetStreams, run) / rawBest[run]).ToArray();
            results.Note($"The first check's ceiling, if the server ran exactly as fast as the raw loops in its own configuration ({sweep.Server}) with {TargetStreams} rows in flight: that cell / raw best = " +
                string.Join(" / ", ceiling.Select(BenchResults.Ratio)) + $" (median {BenchResults.Ratio(BenchResults.Median(ceiling))}).");
        }
        // The baseline before the sweep: one loop with libtorch's default threads (one per core). Kept as a note so that
        // results from before and after the change can be put side by side.
        var single = new LoopSetting(1, Environment.ProcessorCount);
        if (sweep.Settings.Contains(single))
        {
            var old = target.Select((m, run) => m.SamplesPerSecond / sweep.Best(single, run)).ToArray();
            results.Note($"Against the previous baseline ({single} only, one loop with a thread per core): server tokens/s at {TargetStreams} streams / raw {single} best = " +
                string.Join(" / ", old.Select(BenchResults.Ratio)) + $" (median {BenchResults.Ratio(BenchResults.Median(old))}).");
        }
        results.Note("Raw loops' best tokens/s per run: " + string.Join(" / ", rawBest.Select(v => v.ToString("F0", CultureInfo.InvariantCulture))) +
            " (" + string.Join(" / ", Enumerable.Range(0, target.Count).Select(sweep.DescribeBest)) + ").");
    }

    private static double Median(IReadOnlyList<Measurement> runs, Func<Measurement, double> figure) => BenchResults.Median(runs.Select(figure));

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
