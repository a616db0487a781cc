using System.Diagnostics;
using System.Globalization;
using System.Text;
using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Perf;

/// <summary>
/// Issue 20's benchmarks on the decoder of <c>bench kv</c> (default 6 layers, d_model 512, 8 heads, 2 KV heads, vocabulary
/// 32,000, FP32) written in onnxruntime-genai's layout (GroupQueryAttention with rotary, <c>genai_config.json</c>, the
/// tokenizer files; no <c>config.json</c>) and served with no generation settings beyond the ones under test. In one
/// process, every cell alternated over the runs:
/// <list type="number">
/// <item>batching at long context: 16 streams with ~1,024-token prompts against one stream (decode tokens/s);</item>
/// <item>the server at 16 streams against raw ONNX Runtime decode loops over the same graph, its cache bound as the
/// server's shared region, swept over loops x threads, and onnxruntime-genai's own <c>Generator</c> at batch 16;</item>
/// <item>chunked prefill: 8 running streams' time between tokens (p99) undisturbed and while one long prompt is prefilled,
/// for several <c>generation.max_num_batched_tokens</c>;</item>
/// <item>prefix caching: time to first token of a request whose 1,024-token system prompt is cached against a fresh one.</item>
/// </list>
/// </summary>
internal static class GenAiBenchmark
{
    private const double BatchingTarget = 3.0;
    private const double ThroughputTarget = 0.85;

    public static async Task RunAsync(BenchOptions o)
    {
        var cores = Environment.ProcessorCount;
        var rows = o.Streams(16);
        var promptTokens = o.PromptTokens ?? 1024;
        var maxTokens = o.MaxTokens ?? 64;
        var seconds = o.DurationSeconds ?? 15;
        var latency = GenAiLatencyCells.Plan.From(o);
        var contextLength = o.ContextLength ?? 4096;
        var longest = Math.Max(promptTokens + maxTokens, Math.Max(latency.LongPrompt + 1, Math.Max(latency.ChunkContext + 64, latency.PrefixTokens + latency.SuffixTokens + 1)));
        if (contextLength < longest)
        {
            throw new ArgumentException($"genai: --context-length {contextLength} is shorter than the longest request ({longest} tokens)");
        }
        // As bench kv: one instance with a thread per core (the latency cells' configuration) and an instance per core.
        var serverSettings = o.Settings?.Select(s => new LoopSetting(s.I, s.T)).Distinct().ToArray() ?? [new LoopSetting(1, cores), new LoopSetting(cores, 1)];
        var rawSettings = (o.RawSettings?.Select(s => new LoopSetting(s.I, s.T)) ?? LoopSetting.Sweep(cores, serverSettings[0]).Where(s => s.Loops * s.Threads == cores))
            .Concat(serverSettings).Distinct().OrderBy(s => s.Loops).ThenBy(s => s.Threads).ToArray();
        var options = KvDecoderModel.Options(o, contextLength, DecoderLayout.GenAi);
        options.Validate();
        var shape = KvGraphShape.Of(options);
        await CompletionEvent.SelfCheckAsync().ConfigureAwait(false);

        var results = new BenchResults("genai", Invariant(
            $"onnxruntime-genai's layout (issue 20): a decoder written by the ModelBuilder with DecoderLayout.GenAi, {options.Layers} layers, d_model {options.DModel}, {options.Heads} heads, {options.KvHeads} KV heads, head size {options.HeadDim}, MLP {options.IntermediateSize}, vocabulary {options.Vocab}, FP32, ") +
            Invariant($"{KvDecoderModel.Parameters(options) / 1e6:F1} M parameters, GroupQueryAttention with do_rotary, context_length {contextLength}; served as a version directory (model.onnx, genai_config.json, tokenizer.json, tokenizer_config.json; no config.json) whose config.yaml sets only instance_group, parameters.intra_op_num_threads and the setting under test. ") +
            Invariant($"Batching: rounds of 1 and of {rows} streaming completions sent together (prompt token ids, {promptTokens} fresh random ones every request so that no prefix cache serves them, max_tokens {maxTokens}, ignore_eos, temperature 0), for at least {seconds} s ({seconds * 2 / 3:F0} s at one stream) per cell and run; decode tokens/s = tokens arriving while every stream of a round decodes / that time; wall tokens/s = generated tokens / the rounds' time. ") +
            Invariant($"Raw: ONNX Runtime in this process on the same graph, L loops x T intra-op threads ({string.Join(", ", rawSettings)}), {rows} rows split evenly, one round per run: every row's {promptTokens}-token prompt computed alone in pieces of 256, then {maxTokens - 1} steps of all rows, the cache ONE buffer per layer's keys and values of width {contextLength} bound as both past and present; tokens/s = generated tokens / wall time (prefills included), as the server's wall tokens/s. ") +
            Invariant($"onnxruntime-genai: its Generator at batch {rows} over the same directory, greedy, the same prompts (report only). {o.Runs} runs: odd runs raw, Generator, server; even runs the other way round; then the chunked-prefill and prefix-caching cells (1 instance x {cores} threads)."));

        string? directory = null;
        await using var session = await BenchSession.StartAsync(o, results, repository =>
        {
            directory = KvDecoderModel.Write(repository, options);
            foreach (var setting in serverSettings)
            {
                KvDecoderModel.AddServed(repository, directory, setting, ServedName(setting));
            }
            GenAiLatencyCells.AddServed(repository, directory, latency);
        }, [], ["--model-control-mode", "explicit"]).ConfigureAwait(false);
        var modelFile = Path.Combine(directory!, GenAiDecoderLayout.ModelFileName);
        using var metrics = new HttpClient { BaseAddress = session.Server.Metrics, Timeout = TimeSpan.FromSeconds(10) };
        using var raw = new ParallelKvDecodeLoops(threads => new GenAiDecodeLoop(modelFile, threads, shape, contextLength));
        var prompts = KvDecoderModel.Prompts(rows, promptTokens, options.Vocab);
        var rawFigures = new Dictionary<string, List<KvRawResult>>(StringComparer.Ordinal);
        var decodeRates = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var latencyCells = new GenAiLatencyCells(session, metrics, latency, options.Vocab);

        await KvBenchmark.CompareWithRawAsync(session, ServedName(serverSettings[0]), raw.Loop(serverSettings[0].Threads), prompts[0], Math.Min(maxTokens, 32), directory!, results).ConfigureAwait(false);
        await latencyCells.ProbeAsync().ConfigureAwait(false);

        void RawCells()
        {
            foreach (var setting in rawSettings)
            {
                var name = RawCell(setting);
                if (!rawFigures.ContainsKey(name))
                {
                    // The first round of a configuration warms its sessions (unmeasured).
                    raw.Run(setting, prompts, promptTokens, Math.Min(maxTokens, 4), 1);
                    rawFigures[name] = [];
                }
                var cpu = CpuSample.Take();
                var r = raw.Run(setting, prompts, promptTokens, maxTokens, 1);
                var used = CpuSample.Take().Since(cpu);
                rawFigures[name].Add(r);
                session.Record(new CellInfo(name, "engine", "-", rows, Invariant($"raw ONNX Runtime, {setting.Loops} loop(s) x {setting.Threads} thread(s), cache shared (past = present, width {contextLength}), {rows} rows; latency = one decode step")), r.Measurement,
                    new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = Invariant($"decode {r.DecodeTokensPerSecond:F0} tokens/s; prefill of {r.RowsPerLoopMax} row(s) x {promptTokens} tokens {BenchResults.Median(r.PrefillMs):F0} ms") });
            }
        }

        // One Model for every run, warmed by a short unmeasured generation (its first one in the process was several times slower).
        using var generator = new GenAiGenerator(directory!);
        generator.Run([.. prompts.Take(2)], Math.Min(promptTokens, 64), Math.Min(maxTokens, 4));

        void GeneratorCell()
        {
            var name = GeneratorCellName(rows);
            var cpu = CpuSample.Take();
            var r = generator.Run(prompts, promptTokens, maxTokens);
            var used = CpuSample.Take().Since(cpu);
            (rawFigures.TryGetValue(name, out var list) ? list : rawFigures[name] = []).Add(r);
            session.Record(new CellInfo(name, "engine", "-", rows, $"onnxruntime-genai Generator, batch {rows}, greedy, its default session options; latency = one GenerateNextToken"), r.Measurement,
                new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = Invariant($"decode {r.DecodeTokensPerSecond:F0} tokens/s; prompts and first token {r.PrefillMs[0]:F0} ms") });
        }

        async Task ServerCellsAsync()
        {
            foreach (var setting in serverSettings)
            {
                var model = ServedName(setting);
                await ModelControl.LoadAsync(session, model).ConfigureAwait(false);
                using var client = new CompletionClient(session.Server.Connection.HttpAddress, model, Math.Max(64, rows));
                foreach (var c in new[] { 1, rows })
                {
                    await ServerCellAsync(session, client, setting, c, promptTokens, maxTokens, options.Vocab, c == 1 ? seconds * 2 / 3 : seconds, metrics, decodeRates).ConfigureAwait(false);
                }
                await ModelControl.UnloadAsync(session, model).ConfigureAwait(false);
            }
        }

        for (session.Run = 1; session.Run <= o.Runs; session.Run++)
        {
            if (session.Run % 2 == 1)
            {
                RawCells();
                GeneratorCell();
                await ServerCellsAsync().ConfigureAwait(false);
            }
            else
            {
                await ServerCellsAsync().ConfigureAwait(false);
                GeneratorCell();
                RawCells();
            }
            await latencyCells.RunAsync(session.Run).ConfigureAwait(false);
        }

        var best = Enumerable.Range(0, o.Runs).Select(run => rawSettings.Max(s => rawFigures[RawCell(s)][run].Measurement.SamplesPerSecond)).ToArray();
        var bestDecode = Enumerable.Range(0, o.Runs).Select(run => rawSettings.Max(s => rawFigures[RawCell(s)][run].DecodeTokensPerSecond)).ToArray();
        AddBatchingTable(results, decodeRates, serverSettings, rows, o.Runs);
        AddRawTable(results, rawFigures, decodeRates, rawSettings, serverSettings, best, bestDecode, rows, o.Runs);
        latencyCells.AddTables(results);
        foreach (var setting in serverSettings)
        {
            results.AddCheck($"genai: {rows} streams / 1 stream, server {setting}, prompts {promptTokens}", $"decode tokens/s at {rows} streams / at 1 stream (tokens arriving while every stream of a round decodes / that time)",
                Enumerable.Range(0, o.Runs).Select(run => decodeRates[ServerCell(setting, rows)][run] / decodeRates[ServerCell(setting, 1)][run]), BatchingTarget, atLeast: true);
        }
        foreach (var setting in serverSettings)
        {
            results.AddCheck($"genai: server {setting} / raw best, {rows} streams", $"server wall tokens/s at {rows} streams / best raw loop tokens/s (max over loops x threads; prefills included on both sides)",
                results.Runs(ServerCell(setting, rows)).Select((m, run) => m.SamplesPerSecond / best[run]), ThroughputTarget, atLeast: true);
        }
        latencyCells.AddChecks(results, o.Runs);
        session.Finish(new
        {
            decoder = new { options.Layers, d_model = options.DModel, options.Heads, kv_heads = options.KvHeads, options.Vocab, context_length = contextLength, parameters = KvDecoderModel.Parameters(options) },
            rows,
            prompt_tokens = promptTokens,
            max_tokens = maxTokens,
            raw_settings = rawSettings.Select(s => s.ToString()).ToArray(),
            server_settings = serverSettings.Select(s => s.ToString()).ToArray(),
            raw_decode_tokens_per_second = rawFigures.ToDictionary(f => f.Key, f => f.Value.Select(r => r.DecodeTokensPerSecond).ToArray()),
            server_decode_tokens_per_second = decodeRates,
            latency = latencyCells.Json(),
            seconds,
            runs = o.Runs,
        });
    }

    /// <summary>The served name of a batching configuration: <c>genai_IxT</c>.</summary>
    private static string ServedName(LoopSetting setting) => $"genai_{setting}";

    private static string RawCell(LoopSetting setting) => $"raw {setting} shared";

    private static string GeneratorCellName(int rows) => $"onnxruntime-genai batch {rows}";

    private static string ServerCell(LoopSetting setting, int streams) => $"server {setting} c={streams}";


    /// <summary>
    /// Rounds of <paramref name="streams"/> requests sent together, each with a fresh prompt of <paramref name="promptTokens"/>
    /// random ids, until <paramref name="seconds"/> have passed (at least one round; an unmeasured round first in a
    /// cell's first run). The server computes the prompts that wait in one step and then decodes every row together, as
    /// the raw loop's round does. Per round: wall tokens/s = generated tokens / the round's time; decode tokens/s =
    /// tokens arriving while every stream decodes (from the last stream's first token to the first stream's last) / that
    /// time, each request's text events scaled by its usage (a token whose text is incomplete sends no event of its own).
    /// </summary>
    private static async Task ServerCellAsync(BenchSession session, CompletionClient client, LoopSetting setting, int streams, int promptTokens, int maxTokens, int vocab, double seconds, HttpClient metrics, Dictionary<string, List<double>> decodeRates)
    {
        var name = ServerCell(setting, streams);
        var random = new Random(1000 * session.Run + streams);
        var errors = new Recorder();
        if (!session.Results.Has(name))
        {
            await RoundAsync(client, streams, promptTokens, maxTokens, vocab, random, errors).ConfigureAwait(false);
        }
        errors = new Recorder();
        var before = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, client.Model).ConfigureAwait(false);
        var metricsBefore = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
        var cpu = CpuSample.Take();
        var began = Stopwatch.GetTimestamp();
        var ttft = new List<double>();
        var tpot = new List<double>();
        double decodeTokens = 0, decodeSeconds = 0;
        long tokens = 0;
        var rounds = 0;
        do
        {
            var round = await RoundAsync(client, streams, promptTokens, maxTokens, vocab, random, errors).ConfigureAwait(false);
            rounds++;
            tokens += round.Tokens;
            decodeTokens += round.DecodeTokens;
            decodeSeconds += round.DecodeSeconds;
            ttft.AddRange(round.TtftMs);
            tpot.AddRange(round.TpotMs);
        }
        while (Stopwatch.GetElapsedTime(began).TotalSeconds < seconds);
        var wall = Stopwatch.GetElapsedTime(began).TotalSeconds;
        var used = CpuSample.Take().Since(cpu);
        var after = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, client.Model).ConfigureAwait(false);
        var metricsAfter = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
        ttft.Sort();
        tpot.Sort();
        var rate = decodeSeconds > 0 ? decodeTokens / decodeSeconds : double.NaN;
        (decodeRates.TryGetValue(name, out var list) ? list : decodeRates[name] = []).Add(rate);
        (decodeRates.TryGetValue(name + " window", out var windows) ? windows : decodeRates[name + " window"] = []).Add(decodeSeconds / rounds);
        var m = new Measurement(ttft.Count, errors.Errors, wall, [.. ttft], errors.FirstError) { ErrorsByStatus = errors.ErrorsByStatus, Samples = tokens, TimePerOutputTokenMs = [.. tpot] };
        session.Record(new CellInfo(name, "server", "openai-sse", streams, $"{setting.Loops} instance(s) x {setting.Threads} thread(s), rounds of {streams} requests sent together, prompts of {promptTokens} fresh ids, {maxTokens} tokens; latency = time to first token"), m,
            new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, ServerStatsDelta.Between(before, after))
            {
                Detail = Invariant($"{rounds} round(s); decode {rate:F0} tokens/s over {decodeSeconds:F2} s with every stream decoding; ") + TokenMetrics.Describe(metricsBefore, metricsAfter),
            });
    }

    /// <summary>One round's figures: generated tokens, the tokens and time while every stream decoded, and each request's TTFT and TPOT.</summary>
    private sealed record Round(long Tokens, double DecodeTokens, double DecodeSeconds, double[] TtftMs, double[] TpotMs);

    private static async Task<Round> RoundAsync(CompletionClient client, int streams, int promptTokens, int maxTokens, int vocab, Random random, Recorder errors)
    {
        var bodies = Enumerable.Range(0, streams).Select(_ => client.Body(Enumerable.Range(0, promptTokens).Select(_ => random.Next(3, vocab)).ToArray(), maxTokens)).ToArray();
        var arrivals = Enumerable.Range(0, streams).Select(_ => new List<long>(maxTokens)).ToArray();
        using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, streams).Select(i => Task.Run(async () =>
        {
            try
            {
                return await client.StreamAsync(bodies[i], (t, _) => arrivals[i].Add(t), null, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or CompletionStreamException or IOException or OperationCanceledException)
            {
                lock (errors)
                {
                    errors.Error(e);
                }
                return (CompletionOutcome?)null;
            }
        }))).ConfigureAwait(false);
        var done = outcomes.Select((o, i) => (Outcome: o, Times: arrivals[i])).Where(x => x.Outcome is { FirstText: > 0 }).ToArray();
        if (done.Length < streams)
        {
            return new Round(done.Sum(x => (long)x.Outcome!.Value.Tokens), 0, 0, [], []);
        }
        var from = done.Max(x => x.Outcome!.Value.FirstText);
        var to = done.Min(x => x.Outcome!.Value.LastText);
        // Events inside (from, to], each request's scaled by its tokens per event.
        var inside = to > from ? done.Sum(x => x.Times.Count(t => t > from && t <= to) * (double)x.Outcome!.Value.Tokens / x.Times.Count) : 0;
        var f = Stopwatch.Frequency / 1000.0;
        return new Round(
            done.Sum(x => (long)x.Outcome!.Value.Tokens),
            inside,
            to > from ? (to - from) / (double)Stopwatch.Frequency : 0,
            done.Select(x => (x.Outcome!.Value.FirstText - x.Outcome.Value.Sent) / f).ToArray(),
            done.Where(x => x.Outcome!.Value.Tokens > 1).Select(x => (x.Outcome!.Value.LastText - x.Outcome.Value.FirstText) / f / (x.Outcome.Value.Tokens - 1)).ToArray());
    }

    private static void AddBatchingTable(BenchResults results, Dictionary<string, List<double>> decodeRates, IReadOnlyList<LoopSetting> servers, int rows, int runs)
    {
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Batching at long context, server (medians over the runs, (min–max); ratios are medians of per-run ratios):")).AppendLine();
        s.AppendLine("| instances x threads | streams | decode tokens/s | all-decoding s per round | wall tokens/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | avg running per step | errors |");
        s.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        foreach (var setting in servers)
        {
            foreach (var c in new[] { 1, rows })
            {
                var r = results.Runs(ServerCell(setting, c));
                var batch = results.Profiles(ServerCell(setting, c)).Select(p => p.Server?.AverageBatch ?? double.NaN);
                s.AppendLine(Invariant($"| {setting} | {c} | {GenerateRawSweep.Spread(decodeRates[ServerCell(setting, c)])} | {BenchResults.Median(decodeRates[ServerCell(setting, c) + " window"]):F2} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {BenchResults.Median(r.Select(m => m.Percentile(50))):F0} | {BenchResults.Median(r.Select(m => m.Percentile(99))):F0} | {BenchResults.Median(r.Select(m => Measurement.Percentile(m.TimePerOutputTokenMs, 50))):F2} | {BenchResults.Median(r.Select(m => Measurement.Percentile(m.TimePerOutputTokenMs, 99))):F2} | {BenchResults.Median(batch):F1} | {KvBenchmark.Errors(r)} |"));
            }
            var many = results.Runs(ServerCell(setting, rows));
            var one = results.Runs(ServerCell(setting, 1));
            s.AppendLine(Invariant($"| {setting} | {rows} / 1 | {BenchResults.Ratio(BenchResults.Median(Enumerable.Range(0, runs).Select(run => decodeRates[ServerCell(setting, rows)][run] / decodeRates[ServerCell(setting, 1)][run])))} | | {BenchResults.Ratio(BenchResults.Median(Enumerable.Range(0, runs).Select(run => many[run].SamplesPerSecond / one[run].SamplesPerSecond)))} | | | | | | |"));
        }
        s.AppendLine().Append("Rounds: the streams' requests sent together (fresh prompts), the next round when all have ended. decode tokens/s: the tokens arriving from the last stream's first token to the first stream's last (every stream decoding) / that time, over the rounds (all-decoding s per round: that time; short when the prompts are computed in pieces among the decode steps, so the first streams finish soon after the last one starts); wall tokens/s: generated tokens / the rounds' time, prompts included; TTFT and TPOT per request. avg running per step: the statistics extension's inferences / executions (prefill runs of joining rows count as executions too).");
        results.Table(s.ToString());
    }

    private static void AddRawTable(BenchResults results, Dictionary<string, List<KvRawResult>> figures, Dictionary<string, List<double>> decodeRates, IReadOnlyList<LoopSetting> rawSettings, IReadOnlyList<LoopSetting> servers, double[] best, double[] bestDecode, int rows, int runs)
    {
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Server against the in-process loops at {rows} streams (medians over the runs, (min–max); / best = median of per-run ratios to the run's best raw cell):")).AppendLine();
        s.AppendLine("| | configuration | wall tokens/s | / raw best | decode tokens/s | / raw best decode | decode step p50 ms | prefill ms per row | |");
        s.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|---|");
        foreach (var setting in rawSettings)
        {
            var r = figures[RawCell(setting)];
            var wins = Enumerable.Range(0, runs).Count(run => r[run].Measurement.SamplesPerSecond == best[run]);
            s.AppendLine(Invariant($"| raw | {setting} | {GenerateRawSweep.Spread(r.Select(x => x.Measurement.SamplesPerSecond))} | {BenchResults.Ratio(BenchResults.Median(r.Select((x, run) => x.Measurement.SamplesPerSecond / best[run])))} | {GenerateRawSweep.Spread(r.Select(x => x.DecodeTokensPerSecond))} | {BenchResults.Ratio(BenchResults.Median(r.Select((x, run) => x.DecodeTokensPerSecond / bestDecode[run])))} | {BenchResults.Median(r.Select(x => x.Measurement.Percentile(50))):F2} | {BenchResults.Median(r.Select(x => BenchResults.Median(x.PrefillMs) / x.RowsPerLoopMax)):F0} | {(wins > 0 ? $"best in {wins} of {runs} runs" : "")} |"));
        }
        var g = figures[GeneratorCellName(rows)];
        s.AppendLine(Invariant($"| onnxruntime-genai | Generator, batch {rows} | {GenerateRawSweep.Spread(g.Select(x => x.Measurement.SamplesPerSecond))} | {BenchResults.Ratio(BenchResults.Median(g.Select((x, run) => x.Measurement.SamplesPerSecond / best[run])))} | {GenerateRawSweep.Spread(g.Select(x => x.DecodeTokensPerSecond))} | {BenchResults.Ratio(BenchResults.Median(g.Select((x, run) => x.DecodeTokensPerSecond / bestDecode[run])))} | {BenchResults.Median(g.Select(x => x.Measurement.Percentile(50))):F2} | {BenchResults.Median(g.Select(x => x.PrefillMs[0] / rows)):F0} | report only |"));
        foreach (var setting in servers)
        {
            var r = results.Runs(ServerCell(setting, rows));
            var step = results.Profiles(ServerCell(setting, rows)).Select(p => p.Server is { Executions: > 0 } d ? d.ComputeInputMsPerExecution + d.ComputeInferMsPerExecution + d.ComputeOutputMsPerExecution : double.NaN);
            s.AppendLine(Invariant($"| server | {setting} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / best[run])))} | {GenerateRawSweep.Spread(decodeRates[ServerCell(setting, rows)])} | {BenchResults.Ratio(BenchResults.Median(decodeRates[ServerCell(setting, rows)].Select((d, run) => d / bestDecode[run])))} | {BenchResults.Median(step):F2} | | |"));
        }
        s.AppendLine().Append(Invariant($"Baseline per run (best raw wall tokens/s): {string.Join(" / ", best.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))}. Raw and Generator: one round per run ({rows} prompts, then decoding to the last token), wall = generated tokens / the round's time, decode = tokens after each row's first / the time from the first token to the last (summed over parallel loops). Server: the rounds above (the same shape: every prompt first, then decoding together); its step = the statistics extension's compute time per execution (a decode step, or a prefill run of a joining row's prompt piece)."));
        results.Table(s.ToString());
    }

    internal static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
