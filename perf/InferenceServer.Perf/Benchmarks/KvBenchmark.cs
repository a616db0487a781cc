using System.Diagnostics;
using System.Globalization;
using System.Text;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Perf;

/// <summary>
/// KV-cache decoding (issue 18): a generated Llama-style decoder (default 6 layers, d_model 512, 8 heads, 2 KV heads,
/// vocabulary 32,000, FP32) served from a Hugging Face version directory with no generation configuration, against
/// raw ONNX Runtime decode loops on the same graph in every configuration of parallel loops x intra-op threads (the
/// baseline is the best). Throughput: 16 streams (16 rows for the raw loops) of 128-token id prompts and 128 generated
/// tokens, tokens/s with the prefills included on both sides. Context scaling: one stream, time per generated token
/// after the first at prompts of 128 and 1,024 tokens. Allocation: the server's engine (<c>KvCacheDecoder</c>) stepped
/// directly, bytes per decode step. Targets: server tokens/s at 16 streams ≥ 0.85 × the raw best; time per token at
/// context 1,024 ≤ 1.5 × at 128.
/// </summary>
internal static class KvBenchmark
{
    private const double ThroughputTarget = 0.85;
    private const double ContextTarget = 1.5;

    public static async Task RunAsync(BenchOptions o)
    {
        var cores = Environment.ProcessorCount;
        var rows = o.Streams(16);
        var promptTokens = o.PromptTokens ?? 128;
        var maxTokens = o.MaxTokens ?? 128;
        var contexts = o.Contexts ?? [128, 1024];
        var contextTokens = o.ContextTokens ?? 32;
        var contextRequests = o.ContextRequests ?? 5;
        var seconds = o.DurationSeconds ?? 20;
        var engineSeconds = o.EngineSeconds ?? 10;
        var outputs = o.RawOutputs ?? [KvOutputs.Ort, KvOutputs.Bound];
        var allocationContexts = o.AllocationContexts ?? [128, 1024];
        var allocationSteps = o.AllocationSteps ?? 32;
        var serverSettings = o.Settings?.Select(s => new LoopSetting(s.I, s.T)).Distinct().ToArray() ?? [new LoopSetting(1, cores), new LoopSetting(cores, 1)];
        var rawSettings = (o.RawSettings?.Select(s => new LoopSetting(s.I, s.T)) ?? LoopSetting.Sweep(cores, serverSettings[0]))
            .Concat(serverSettings).Distinct().OrderBy(s => s.Loops).ThenBy(s => s.Threads).ToArray();
        var contextThreads = serverSettings.Select(s => s.Threads).Distinct().Order().ToArray();
        // The context must hold the longest request of every measurement (max_position_embeddings is the server's max_model_len).
        var maxPositions = Math.Max(1152, Math.Max(promptTokens + maxTokens, Math.Max(contexts.Max() + contextTokens, allocationContexts.DefaultIfEmpty(0).Max() + allocationSteps + 8)));
        var options = KvDecoderModel.Options(o, maxPositions);
        options.Validate();
        var shape = KvGraphShape.Of(options);
        var prompts = KvDecoderModel.Prompts(rows, promptTokens, options.Vocab);
        var contextPrompt = KvDecoderModel.Prompts(1, contexts.Max(), options.Vocab)[0];
        await CompletionEvent.SelfCheckAsync().ConfigureAwait(false);

        var results = new BenchResults("kv", Invariant(
            $"KV-cache decoding of a generated Llama-style decoder: {options.Layers} layers, d_model {options.DModel}, {options.Heads} heads, {options.KvHeads} KV heads, head size {options.HeadDim}, MLP {options.IntermediateSize}, vocabulary {options.Vocab}, FP32, ") +
            Invariant($"{KvDecoderModel.Parameters(options) / 1e6:F1} M parameters ({(KvDecoderModel.Parameters(options) - (long)options.Vocab * options.DModel) / 1e6:F1} M without the embedding table), max_position_embeddings {maxPositions}; ") +
            "served as a Hugging Face version directory (model.onnx, config.json, generation_config.json, tokenizer.json) whose config.yaml sets only instance_group and parameters.intra_op_num_threads. " +
            Invariant($"Throughput: {rows} sequences, prompts of {promptTokens} token ids, {maxTokens} generated tokens each, greedy. ") +
            Invariant($"Raw: ONNX Runtime in this process, L loops (a thread and a session each) x T intra-op threads, L x T = {string.Join(", ", rawSettings)}, the {rows} rows split evenly; a round = one prefill run of every row's prompt + {maxTokens - 1} decode steps, whole rounds for at least {engineSeconds} s; ") +
            $"outputs {string.Join(" and ", outputs.Select(KvDecodeLoop.Name))} (ort: ONNX Runtime allocates logits and presents, the presents fed back as the past; bound: preallocated halves as the server's engine); tokens/s = generated tokens / wall time, prefill included; the baseline is the best raw cell of each run. " +
            Invariant($"Engine: the server's own KvCacheDecoder over OnnxRuntimeBackend stepped directly in each server configuration (no scheduler, sampler or HTTP), the streams' workload (a row replaced by a new sequence the moment it ends, the first ones shortened so that rows end at different steps), {engineSeconds} s after warm-up. ") +
            Invariant($"Server: in-process on loopback, {string.Join(" and ", serverSettings.Select(s => $"{s.Loops} instance(s) x {s.Threads} thread(s)"))}; {rows} closed-loop streams of `POST /v1/completions` with the prompt as token ids, max_tokens {maxTokens}, ignore_eos, temperature 0, stream with usage; ") +
            Invariant($"tokens counted as they arrive in a {seconds} s window (prefills of the new requests inside it), after {o.WarmupSeconds} s of warm-up ({Math.Max(o.WarmupSeconds, o.FirstWarmupSeconds)} s before a cell's first run). ") +
            Invariant($"Context scaling: one stream, prompts of {string.Join(" and ", contexts)} tokens, {contextTokens} generated, {contextRequests} requests (raw: rounds) per cell and run; time per token = (last token − first token) / (tokens − 1), i.e. decode steps only. {o.Runs} runs: odd runs raw loops, engine, server; even runs server, engine, raw loops."));

        var threading = $"server: {string.Join(", ", serverSettings.Select(s => $"{KvDecoderModel.ServedName(s)} = {s.Loops} instance(s) x intra_op_num_threads {s.Threads}"))}; raw: {string.Join(", ", rawSettings)} on {cores} cores; ONNX Runtime's other session options at their defaults on both sides (intra-op spinning on)";
        string? decoderDirectory = null;
        await using var session = await BenchSession.StartAsync(o, results, repository =>
        {
            decoderDirectory = KvDecoderModel.Write(repository, options);
            foreach (var setting in serverSettings)
            {
                KvDecoderModel.AddServed(repository, decoderDirectory, setting);
            }
        }, [], ["--model-control-mode", "explicit"]).ConfigureAwait(false);
        var modelFile = Path.Combine(decoderDirectory!, OptimumDecoderLayout.ModelFileName);
        BenchSession.Log(threading);
        results.Note($"Threading: {threading}.");
        using var metrics = new HttpClient { BaseAddress = session.Server.Metrics, Timeout = TimeSpan.FromSeconds(10) };
        using var raw = new ParallelKvDecodeLoops(modelFile, shape, outputs[0]);
        var rawByOutputs = outputs.Skip(1).ToDictionary(k => k, k => new ParallelKvDecodeLoops(modelFile, shape, k));
        rawByOutputs[outputs[0]] = raw;
        // One stream at a time is measured with bound outputs when they are among the measured ones: the server's engine binds its cache so.
        var contextLoops = rawByOutputs.GetValueOrDefault(KvOutputs.Bound) ?? raw;
        // The server's default max_running_sequences per instance (GenerationSettings.DefaultKvRunningSequences), so the same cache plan.
        using var engine = new KvEngineLoops(modelFile, maxPositions, GenerationSettings.DefaultKvRunningSequences);
        var warmed = new HashSet<string>(StringComparer.Ordinal);
        var rounds = new Dictionary<string, int>(StringComparer.Ordinal);
        var figures = new Figures();
        try
        {
            await CompareWithRawAsync(session, KvDecoderModel.ServedName(serverSettings[0]), raw.Loop(serverSettings[0].Threads), prompts[0], maxTokens, decoderDirectory!, results).ConfigureAwait(false);
            // The raw loops (with no model loaded: they have the process to themselves), the engine, then the server; every
            // other run the other way round, so that neither side always has the earlier slot on this shared machine.
            void RawCells()
            {
                foreach (var setting in rawSettings)
                {
                    foreach (var output in outputs)
                    {
                        var name = RawCell(setting, output, outputs.Count > 1);
                        var loops = rawByOutputs[output];
                        if (warmed.Add(name))
                        {
                            // The first round of a configuration warms its sessions and sets the rounds that fill the cell's time.
                            var warm = loops.Run(setting, prompts, promptTokens, maxTokens, 1);
                            rounds[name] = Math.Max(1, (int)Math.Ceiling(engineSeconds / warm.Measurement.Seconds));
                            BenchSession.Log(Invariant($"{name}: warm-up round {warm.Measurement.Seconds:F1} s, {rounds[name]} round(s) per run"));
                        }
                        var cpu = CpuSample.Take();
                        var gc = GcDelta.Take();
                        var r = loops.Run(setting, prompts, promptTokens, maxTokens, rounds[name]);
                        var used = CpuSample.Take().Since(cpu);
                        var cell = new CellInfo(name, "engine", "-", rows, Invariant($"raw ONNX Runtime, {setting.Loops} loop(s) x {setting.Threads} thread(s), outputs {KvDecodeLoop.Name(output)}, {rows} rows, {r.Rounds} round(s) of prefill + {maxTokens - 1} steps; latency = one decode step"));
                        session.Record(cell, r.Measurement, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null)
                        {
                            Gc = GcDelta.Since(gc),
                            Detail = Invariant($"{r.Rounds} round(s) per loop; prefill of {r.RowsPerLoopMax} row(s) x {promptTokens} tokens p50 {BenchResults.Median(r.PrefillMs):F1} ms"),
                        });
                        figures.Add(name, r);
                    }
                }
                foreach (var threads in contextThreads)
                {
                    RawContexts(session, contextLoops.Loop(threads), contextPrompt, contexts, contextTokens, contextRequests, warmed);
                }
            }

            void EngineCells()
            {
                foreach (var (setting, staggered) in serverSettings.SelectMany(s => o.EngineStatic ? new[] { (s, true), (s, false) } : [(s, true)]))
                {
                    var name = EngineCell(setting, staggered);
                    var warmup = warmed.Add(name) ? Math.Max(o.WarmupSeconds, o.FirstWarmupSeconds) : o.WarmupSeconds;
                    var cpu = CpuSample.Take();
                    var gc = GcDelta.Take();
                    var (m, profile) = engine.Run(setting, prompts, maxTokens, TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(engineSeconds), staggered);
                    var used = CpuSample.Take().Since(cpu);
                    figures.Add(name, profile);
                    session.Record(new CellInfo(name, "engine", "-", rows, Invariant($"the server's engine (KvCacheDecoder over OnnxRuntimeBackend) without the server, {setting.Loops} instance(s) x {setting.Threads} thread(s), {rows} rows replaced as they end{(staggered ? " (staggered as the streams)" : ", all together (no ragged rows)")}; latency = one step")), m,
                        new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null)
                        {
                            Gc = GcDelta.Since(gc),
                            Detail = Invariant($"decode-only steps p50 {BenchResults.Median(profile.DecodeStepMs):F2} ms (Execute {BenchResults.Median(profile.DecodeExecuteMs):F2} ms); {profile.JoinStepMs.Count} steps with {profile.JoinedRows} joining rows, {profile.JoinMsPerRow:F1} ms per joining row beyond a decode step"),
                        });
                }
            }

            async Task ServerCellsAsync()
            {
                foreach (var setting in serverSettings)
                {
                    var model = KvDecoderModel.ServedName(setting);
                    var beforeLoad = ThreadCpu.Take();
                    await ModelControl.LoadAsync(session, model).ConfigureAwait(false);
                    // The threads the load started (ONNX Runtime's intra-op pools, named after the thread that loaded them) and the decode loops.
                    var pool = ThreadCpu.Take().StartedSince(beforeLoad);
                    using var client = new CompletionClient(session.Server.Connection.HttpAddress, model, Math.Max(64, rows));
                    await ServerThroughputAsync(session, client, setting, prompts, maxTokens, seconds, metrics, pool, warmed, figures).ConfigureAwait(false);
                    await ServerContextsAsync(session, client, setting, contextPrompt, contexts, contextTokens, contextRequests, metrics, warmed, figures).ConfigureAwait(false);
                    await ModelControl.UnloadAsync(session, model).ConfigureAwait(false);
                }
            }

            for (session.Run = 1; session.Run <= o.Runs; session.Run++)
            {
                if (session.Run % 2 == 1)
                {
                    RawCells();
                    EngineCells();
                    await ServerCellsAsync().ConfigureAwait(false);
                }
                else
                {
                    await ServerCellsAsync().ConfigureAwait(false);
                    EngineCells();
                    RawCells();
                }
            }
        }
        finally
        {
            foreach (var loops in rawByOutputs.Values.Where(l => l != raw))
            {
                loops.Dispose();
            }
        }

        IReadOnlyList<KvAllocationFigure> allocations = [];
        if (allocationContexts.Count > 0)
        {
            BenchSession.Log($"allocation: KvCacheDecoder at batch {rows}, contexts {string.Join(",", allocationContexts)}, {allocationSteps} steps each");
            var allocationPrompts = KvDecoderModel.Prompts(rows, allocationContexts.Max(), options.Vocab);
            allocations = KvStepAllocations.Measure(modelFile, cores, maxPositions, allocationPrompts, allocationContexts, allocationSteps);
        }

        var best = BestPerRun(results, rawSettings, outputs, o.Runs);
        AddRawTable(results, figures, rawSettings, outputs, best, serverSettings, o.Runs);
        AddServerTable(results, figures, serverSettings, rawSettings, outputs, best, rows, o.Runs);
        AddEngineTable(results, figures, serverSettings, rawSettings, outputs, rows, o.EngineStatic);
        AddContextTable(results, figures, serverSettings, contextThreads, contexts, contextLoops.Outputs);
        AddAllocationTable(results, allocations);
        AddChecks(results, serverSettings, best, rows, contexts);
        session.Finish(new
        {
            decoder = new { options.Layers, d_model = options.DModel, options.Heads, kv_heads = options.KvHeads, options.Vocab, max_positions = maxPositions, parameters = KvDecoderModel.Parameters(options) },
            threading,
            rows,
            prompt_tokens = promptTokens,
            max_tokens = maxTokens,
            contexts,
            context_tokens = contextTokens,
            context_requests = contextRequests,
            raw_settings = rawSettings.Select(s => s.ToString()).ToArray(),
            server_settings = serverSettings.Select(s => s.ToString()).ToArray(),
            raw_outputs = outputs.Select(KvDecodeLoop.Name).ToArray(),
            seconds,
            engine_seconds = engineSeconds,
            runs = o.Runs,
            allocations = allocations.Select(a => new { a.Context, a.Batch, join_bytes = a.JoinBytes, step_bytes = a.StepBytes, step_ms = a.StepMs, collections = a.Collections }),
        });
    }

    private static string RawCell(LoopSetting setting, KvOutputs outputs, bool named) => $"raw {setting}" + (named ? " " + KvDecodeLoop.Name(outputs) : "");

    private static string EngineCell(LoopSetting setting, bool staggered = true) => $"engine {setting}" + (staggered ? "" : " static");

    private static string RawContextCell(int threads, int context) => $"raw 1x{threads} context {context}";

    private static string ServerCell(LoopSetting setting, int rows) => $"server {setting} c={rows}";

    private static string ServerContextCell(LoopSetting setting, int context) => $"server {setting} context {context}";

    /// <summary>
    /// One stream of the raw loop at each context (<paramref name="prompt"/>'s first ids), the contexts taking turns
    /// request by request (so that each pair shares the machine's moment): each round's time per token after the first
    /// (decode steps only).
    /// </summary>
    private static void RawContexts(BenchSession session, IKvRoundLoop loop, int[] prompt, IReadOnlyList<int> contexts, int tokens, int requests, HashSet<string> warmed)
    {
        var tpot = contexts.Select(_ => new List<double>()).ToArray();
        var steps = contexts.Select(_ => new List<double>()).ToArray();
        var seconds = new double[contexts.Count];
        var cpu = CpuSample.Take();
        for (var i = -1; i < requests; i++)
        {
            for (var c = 0; c < contexts.Count; c++)
            {
                if (i < 0 && !warmed.Add(RawContextCell(loop.Threads, contexts[c])))
                {
                    continue;
                }
                var started = Stopwatch.GetTimestamp();
                var t = loop.Round([prompt[..contexts[c]]], contexts[c], tokens);
                if (i >= 0)
                {
                    seconds[c] += Stopwatch.GetElapsedTime(started).TotalSeconds;
                    tpot[c].Add(Stopwatch.GetElapsedTime(t.FirstToken, t.LastToken).TotalMilliseconds / (tokens - 1));
                    steps[c].AddRange(t.StepMs);
                }
            }
        }
        var used = CpuSample.Take().Since(cpu);
        for (var c = 0; c < contexts.Count; c++)
        {
            var sorted = tpot[c].Order().ToArray();
            var m = new Measurement(requests, 0, seconds[c], sorted, null) { Samples = (long)requests * tokens, TimePerOutputTokenMs = sorted };
            session.Record(new CellInfo(RawContextCell(loop.Threads, contexts[c]), "engine", "-", 1, $"raw ONNX Runtime, one row, prompt {contexts[c]}, {tokens} tokens, {loop.Threads} thread(s), outputs {loop.OutputsName}; latency = time per token after the first"), m,
                new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = Invariant($"decode step p50 {BenchResults.Median(steps[c]):F2} ms; CPU over every context's requests") });
        }
    }

    /// <summary>The server at <paramref name="prompts"/>.Count streams, closed loop, tokens counted as they arrive.</summary>
    private static async Task ServerThroughputAsync(BenchSession session, CompletionClient client, LoopSetting setting, int[][] prompts, int maxTokens, double seconds, HttpClient metrics, IReadOnlySet<int> pool, HashSet<string> warmed, Figures figures)
    {
        var o = session.Options;
        var name = ServerCell(setting, prompts.Length);
        var warmup = warmed.Add(name) ? Math.Max(o.WarmupSeconds, o.FirstWarmupSeconds) : o.WarmupSeconds;
        InferenceServer.Protocol.ModelStatistics? before = null, after = null;
        TokenMetrics? metricsBefore = null, metricsAfter = null;
        var cpu = default(CpuSample);
        var used = (Machine: double.NaN, Process: double.NaN);
        var gc = GcDelta.Take();
        GcDelta? gcs = null;
        ThreadCpu? threadsBefore = null, threadsAfter = null;
        var m = await CompletionLoop.RunAsync(client, (stream, tokens) => client.Body(prompts[stream % prompts.Length], tokens), TokenCounting.Events,
            maxTokens, prompts.Length, TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(seconds), o.MaxRequests,
            opened: async () =>
            {
                before = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, client.Model).ConfigureAwait(false);
                metricsBefore = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
                cpu = CpuSample.Take();
                gc = GcDelta.Take();
                threadsBefore = ThreadCpu.Take();
            },
            closed: async () =>
            {
                threadsAfter = ThreadCpu.Take();
                used = CpuSample.Take().Since(cpu);
                gcs = GcDelta.Since(gc);
                after = await ServerStatsDelta.SnapshotAsync(session.Server.Grpc, client.Model).ConfigureAwait(false);
                metricsAfter = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
            }).ConfigureAwait(false);
        session.Record(new CellInfo(name, "server", "openai-sse", prompts.Length, $"{setting.Loops} instance(s) x {setting.Threads} thread(s); latency = time to first token"), m,
            new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, ServerStatsDelta.Between(before, after))
            {
                Gc = gcs,
                Detail = TokenMetrics.Describe(metricsBefore, metricsAfter) + "; " + threadsAfter!.Describe(threadsBefore!, "generate ", pool, m.Samples ?? 0),
            });
        figures.Add(name, TokenMetrics.TpotMs(metricsBefore, metricsAfter));
    }

    /// <summary>
    /// One stream at each context (<paramref name="prompt"/>'s first ids), the contexts taking turns request by
    /// request: each request's time per token after the first as the client sees it, and the server's own (its
    /// time-per-output-token metric, scraped between requests).
    /// </summary>
    private static async Task ServerContextsAsync(BenchSession session, CompletionClient client, LoopSetting setting, int[] prompt, IReadOnlyList<int> contexts, int tokens, int requests, HttpClient metrics, HashSet<string> warmed, Figures figures)
    {
        var bodies = contexts.Select(c => client.Body(prompt[..c], tokens)).ToArray();
        var tpot = contexts.Select(_ => new List<double>()).ToArray();
        var own = contexts.Select(_ => new List<double>()).ToArray();
        var recorders = contexts.Select(_ => new Recorder()).ToArray();
        var seconds = new double[contexts.Count];
        var cpu = CpuSample.Take();
        var scraped = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
        for (var i = -1; i < requests; i++)
        {
            for (var c = 0; c < contexts.Count; c++)
            {
                if (i < 0 && !warmed.Add(ServerContextCell(setting, contexts[c])))
                {
                    continue;
                }
                var started = Stopwatch.GetTimestamp();
                try
                {
                    var outcome = await StreamAsync(client, bodies[c]).ConfigureAwait(false);
                    if (i < 0)
                    {
                        continue;
                    }
                    if (outcome.Tokens != tokens)
                    {
                        recorders[c].Error("client:token-count", $"{outcome.Tokens} tokens generated, {tokens} asked for");
                    }
                    else if (outcome.FirstText > 0 && outcome.Tokens > 1)
                    {
                        tpot[c].Add((outcome.LastText - outcome.FirstText) * 1000.0 / Stopwatch.Frequency / (outcome.Tokens - 1));
                    }
                }
                catch (Exception e) when (e is HttpRequestException or CompletionStreamException or OperationCanceledException)
                {
                    recorders[c].Error(e);
                }
                finally
                {
                    seconds[c] += i >= 0 ? Stopwatch.GetElapsedTime(started).TotalSeconds : 0;
                    var now = await TokenMetrics.ScrapeAsync(metrics, client.Model).ConfigureAwait(false);
                    if (i >= 0)
                    {
                        own[c].Add(TokenMetrics.TpotMs(scraped, now));
                    }
                    scraped = now;
                }
            }
        }
        var used = CpuSample.Take().Since(cpu);
        for (var c = 0; c < contexts.Count; c++)
        {
            var name = ServerContextCell(setting, contexts[c]);
            var sorted = tpot[c].Order().ToArray();
            var ownMedian = BenchResults.Median(own[c]);
            var m = new Measurement(sorted.Length, recorders[c].Errors, seconds[c], sorted, recorders[c].FirstError)
            {
                ErrorsByStatus = recorders[c].ErrorsByStatus,
                Samples = (long)sorted.Length * tokens,
                TimePerOutputTokenMs = sorted,
            };
            session.Record(new CellInfo(name, "server", "openai-sse", 1, $"{setting.Loops} instance(s) x {setting.Threads} thread(s), one stream, prompt {contexts[c]}, {tokens} tokens; latency = time per token after the first"), m,
                new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = Invariant($"server TPOT per request, median {ownMedian:F3} ms; CPU over every context's requests") });
            figures.Add(name, ownMedian);
        }
    }

    private static async Task<CompletionOutcome> StreamAsync(CompletionClient client, byte[] body)
    {
        using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
        return await client.StreamAsync(body, null, null, timeout.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// Before measuring: one completion of the first prompt from the server must be the raw loop's greedy continuation
    /// of it (both one row), its ids decoded with the model's own tokenizer.json; this checks the served model, the
    /// token-id prompt and the client's parsing end to end.
    /// </summary>
    internal static async Task CompareWithRawAsync(BenchSession session, string model, IKvRoundLoop loop, int[] prompt, int maxTokens, string directory, BenchResults results)
    {
        await ModelControl.LoadAsync(session, model).ConfigureAwait(false);
        var text = new StringBuilder();
        CompletionOutcome outcome;
        using (var client = new CompletionClient(session.Server.Connection.HttpAddress, model, 1))
        {
            try
            {
                using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
                outcome = await client.StreamAsync(client.Body(prompt, maxTokens), null, text, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or CompletionStreamException or OperationCanceledException)
            {
                throw new InvalidOperationException($"the server's POST /v1/completions on {model} failed: {e.Message}", e);
            }
        }
        await ModelControl.UnloadAsync(session, model).ConfigureAwait(false);
        var generated = new[] { new int[maxTokens] };
        loop.Round([prompt], prompt.Length, maxTokens, generated);
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJson, File = HuggingFaceTokenizerFiles.TokenizerFileName }, directory);
        var decoder = tokenizer.CreateDecoder(prompt);
        var expected = new StringBuilder();
        foreach (var id in generated[0])
        {
            expected.Append(decoder.Append(id));
        }
        expected.Append(decoder.Flush());
        var got = text.ToString();
        var same = got == expected.ToString() && outcome.UsageTokens == maxTokens;
        var line = same
            ? $"Check: the server's greedy completion of the first prompt ({model}, one stream) equals the raw loop's ({maxTokens} tokens, {got.Length} characters; usage: {outcome.PromptTokens} prompt, {outcome.UsageTokens} completion tokens; {outcome.TextEvents} text events; finish_reason {outcome.FinishReason})."
            : $"Check: the server's greedy completion of the first prompt ({model}) DIFFERS from the raw loop's (usage {outcome.UsageTokens} completion tokens; server {got.Length} characters, raw {expected.Length}; first difference at character {FirstDifference(got, expected.ToString())}).";
        BenchSession.Log(line);
        results.Note(line);
    }

    private static int FirstDifference(string a, string b) =>
        Enumerable.Range(0, Math.Min(a.Length, b.Length)).FirstOrDefault(i => a[i] != b[i], Math.Min(a.Length, b.Length));

    /// <summary>The baseline of each run: the best raw cell (over configurations and output kinds).</summary>
    private static double[] BestPerRun(BenchResults results, IReadOnlyList<LoopSetting> settings, IReadOnlyList<KvOutputs> outputs, int runs) =>
        Enumerable.Range(0, runs).Select(run => Cells(settings, outputs).Max(c => results.Runs(c.Name)[run].SamplesPerSecond)).ToArray();

    private static IEnumerable<(string Name, LoopSetting Setting, KvOutputs Outputs)> Cells(IReadOnlyList<LoopSetting> settings, IReadOnlyList<KvOutputs> outputs) =>
        settings.SelectMany(s => outputs.Select(k => (RawCell(s, k, outputs.Count > 1), s, k)));

    private static void AddRawTable(BenchResults results, Figures figures, IReadOnlyList<LoopSetting> settings, IReadOnlyList<KvOutputs> outputs, double[] best, IReadOnlyList<LoopSetting> servers, int runs)
    {
        var s = new StringBuilder();
        s.AppendLine("Raw ONNX Runtime decode loops (medians over the runs, (min–max); / best = the median of the per-run ratios to the run's best raw cell):").AppendLine();
        s.AppendLine("| loops x threads | outputs | tokens/s | / best | decode step p50 ms | prefill p50 ms | rounds per run | |");
        s.AppendLine("|---|---|--:|--:|--:|--:|--:|---|");
        foreach (var (name, setting, output) in Cells(settings, outputs))
        {
            var r = results.Runs(name);
            var ratio = BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / best[run]));
            var wins = Enumerable.Range(0, runs).Count(run => r[run].SamplesPerSecond == best[run]);
            var marks = new List<string>();
            if (wins > 0)
            {
                marks.Add(wins == runs ? "**best in every run**" : $"best in {wins} of {runs} runs");
            }
            if (servers.Contains(setting))
            {
                marks.Add("a server configuration");
            }
            var raw = figures.Raw[name];
            s.AppendLine(Invariant($"| {setting} | {KvDecodeLoop.Name(output)} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {BenchResults.Ratio(ratio)} | {BenchResults.Median(r.Select(m => m.Percentile(50))):F2} | {BenchResults.Median(raw.Select(x => BenchResults.Median(x.PrefillMs))):F0} (rows per loop {raw[0].RowsPerLoopMax}) | {raw[0].Rounds} | {string.Join("; ", marks)} |"));
        }
        s.AppendLine().Append("Baseline per run (best raw tokens/s): " + string.Join(" / ", best.Select(v => v.ToString("F0", CultureInfo.InvariantCulture))) + ".");
        results.Table(s.ToString());
    }

    private static void AddServerTable(BenchResults results, Figures figures, IReadOnlyList<LoopSetting> servers, IReadOnlyList<LoopSetting> rawSettings, IReadOnlyList<KvOutputs> outputs, double[] best, int rows, int runs)
    {
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Server, {rows} streaming completions (medians over the runs; ratios are medians of per-run ratios):")).AppendLine();
        s.AppendLine("| | instances x threads | tokens/s | / raw best | / raw same configuration | / engine same configuration | step p50 ms | TTFT p50 ms | TPOT p50 ms | server TPOT mean ms | avg running per step | errors |");
        s.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        foreach (var setting in servers)
        {
            var r = results.Runs(EngineCell(setting));
            var same = rawSettings.Contains(setting) ? results.Runs(RawCell(setting, outputs[0], outputs.Count > 1)) : null;
            s.AppendLine(Invariant($"| engine | {setting} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / best[run])))} | {(same is null ? "n/a" : BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / same[run].SamplesPerSecond))))} | | {BenchResults.Median(r.Select(m => m.Percentile(50))):F1} | | | | {rows / (double)setting.Loops:F1} | {Errors(r)} |"));
        }
        foreach (var setting in servers)
        {
            var r = results.Runs(ServerCell(setting, rows));
            var same = rawSettings.Contains(setting) ? results.Runs(RawCell(setting, outputs[0], outputs.Count > 1)) : null;
            var engine = results.Runs(EngineCell(setting));
            var profiles = results.Profiles(ServerCell(setting, rows));
            var serverTpot = figures.ServerTpotMs[ServerCell(setting, rows)];
            var batch = profiles.Select(p => p.Server?.AverageBatch ?? double.NaN).ToArray();
            var step = profiles.Select(p => p.Server is { Executions: > 0 } d ? d.ComputeInputMsPerExecution + d.ComputeInferMsPerExecution + d.ComputeOutputMsPerExecution : double.NaN).ToArray();
            s.AppendLine(Invariant($"| server | {setting} | {GenerateRawSweep.Spread(r.Select(m => m.SamplesPerSecond))} | {BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / best[run])))} | {(same is null ? "n/a" : BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / same[run].SamplesPerSecond))))} | {BenchResults.Ratio(BenchResults.Median(r.Select((m, run) => m.SamplesPerSecond / engine[run].SamplesPerSecond)))} | {BenchResults.Median(step):F1} | {BenchResults.Median(r.Select(m => m.Percentile(50))):F1} | {BenchResults.Median(r.Select(m => Measurement.Percentile(m.TimePerOutputTokenMs, 50))):F2} | {BenchResults.Median(serverTpot):F2} | {BenchResults.Median(batch):F1} | {Errors(r)} |"));
        }
        s.AppendLine().Append(Invariant($"engine: the server's KvCacheDecoder stepped directly, no server (step = one instance's step, prefills of joining rows included); server: step = the statistics extension's compute time per execution (one decode step of an instance, with the prefills of the rows joining in it), avg running per step = its inferences / executions; TTFT: request sent → first text; TPOT: (last − first text) / (tokens − 1) per completion, including the steps that prefilled other streams' prompts; server TPOT: the server's own inference_time_per_output_token_seconds over the window ({runs} runs)."));
        results.Table(s.ToString());
    }

    private static void AddEngineTable(BenchResults results, Figures figures, IReadOnlyList<LoopSetting> servers, IReadOnlyList<LoopSetting> rawSettings, IReadOnlyList<KvOutputs> outputs, int rows, bool engineStatic)
    {
        var s = new StringBuilder();
        s.AppendLine("Where the engine's time goes (medians over the runs): its decode-only steps (no row joining) and what a joining row adds, next to the raw loop in the same configuration:").AppendLine();
        s.AppendLine("| instances x threads | rows per instance | engine tokens/s | engine decode step p50 ms | of which Execute p50 ms | engine's own work p50 ms | raw decode step p50 ms | engine: ms per joining row | raw: prefill ms per row |");
        s.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var (setting, staggered) in servers.SelectMany(s => engineStatic ? new[] { (s, true), (s, false) } : [(s, true)]))
        {
            var engine = figures.Engine[EngineCell(setting, staggered)];
            var tokens = GenerateRawSweep.Spread(results.Runs(EngineCell(setting, staggered)).Select(m => m.SamplesPerSecond));
            var rawName = RawCell(setting, outputs[0], outputs.Count > 1);
            var raw = rawSettings.Contains(setting) ? figures.Raw[rawName] : null;
            var rawStep = raw is null ? double.NaN : BenchResults.Median(results.Runs(rawName).Select(m => m.Percentile(50)));
            var rawPrefill = raw is null ? double.NaN : BenchResults.Median(raw.Select(r => BenchResults.Median(r.PrefillMs) / r.RowsPerLoopMax));
            var step = BenchResults.Median(engine.Select(e => BenchResults.Median(e.DecodeStepMs)));
            var execute = BenchResults.Median(engine.Select(e => BenchResults.Median(e.DecodeExecuteMs)));
            var own = BenchResults.Median(engine.Select(e => BenchResults.Median(e.DecodeStepMs.Zip(e.DecodeExecuteMs, (a, b) => a - b))));
            s.AppendLine(Invariant($"| {setting}{(staggered ? "" : ", rows together")} | {rows / (double)setting.Loops:F0} | {tokens} | {step:F2} | {execute:F2} | {own:F3} | {rawStep:F2} | {BenchResults.Median(engine.Select(e => e.JoinMsPerRow)):F1} | {rawPrefill:F1} |"));
        }
        s.AppendLine().Append("Execute: the engine seam's call (inputs bound over pinned memory, the ONNX Runtime run, outputs into the cache's other half); the engine's own work: the rest of a step (compaction, mask and positions, logits copy). A joining row's prompt is computed alone ([1, prompt]) and copied into the batch; the raw loop computes every row's prompt in one run. The engine's decode steps run over a rectangle as long as its longest row (rows of different lengths, left-padded), the raw loop's over rows of one length.");
        results.Table(s.ToString());
    }

    private static void AddContextTable(BenchResults results, Figures figures, IReadOnlyList<LoopSetting> servers, IReadOnlyList<int> threads, IReadOnlyList<int> contexts, KvOutputs rawOutputs)
    {
        var low = contexts.Min();
        var high = contexts.Max();
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Context scaling, one stream: time per generated token after the first, ms (medians over the runs of each run's median request; ratio = the median of the per-run ratios {high} / {low}):")).AppendLine();
        s.AppendLine("| target | " + string.Join(" | ", contexts.Select(c => Invariant($"context {c} ms")) ) + Invariant($" | {high} / {low} | server's own TPOT {high} / {low} |"));
        s.AppendLine("|---|" + string.Concat(contexts.Select(_ => "--:|")) + "--:|--:|");
        foreach (var t in threads)
        {
            s.AppendLine(ContextRow($"raw, 1 loop x {t} thread(s), outputs {KvDecodeLoop.Name(rawOutputs)}", c => RawContextCell(t, c), results, contexts, null));
        }
        foreach (var setting in servers)
        {
            s.AppendLine(ContextRow($"server {setting}", c => ServerContextCell(setting, c), results, contexts, c => [.. figures.ServerTpotMs[ServerContextCell(setting, c)]]));
        }
        results.Table(s.ToString());
    }

    private static string ContextRow(string label, Func<int, string> cell, BenchResults results, IReadOnlyList<int> contexts, Func<int, double[]>? own)
    {
        var low = contexts.Min();
        var high = contexts.Max();
        var perContext = contexts.Select(c => results.Runs(cell(c)).Select(m => m.Percentile(50)).ToArray()).ToArray();
        var lowRuns = results.Runs(cell(low)).Select(m => m.Percentile(50)).ToArray();
        var highRuns = results.Runs(cell(high)).Select(m => m.Percentile(50)).ToArray();
        var ratio = BenchResults.Median(highRuns.Zip(lowRuns, (h, l) => h / l));
        var ownRatio = own is null ? "" : BenchResults.Ratio(BenchResults.Median(own(high).Zip(own(low), (h, l) => h / l)));
        return $"| {label} | " + string.Join(" | ", perContext.Select(v => BenchResults.Median(v).ToString("F2", CultureInfo.InvariantCulture))) + $" | {BenchResults.Ratio(ratio)} | {ownRatio} |";
    }

    private static void AddAllocationTable(BenchResults results, IReadOnlyList<KvAllocationFigure> allocations)
    {
        if (allocations.Count == 0)
        {
            return;
        }
        var s = new StringBuilder();
        s.AppendLine("Managed allocation of the server's engine (KvCacheDecoder over OnnxRuntimeBackend, stepped directly; GC.GetAllocatedBytesForCurrentThread around each Step):").AppendLine();
        s.AppendLine("| batch | context (prompt) | bytes per decode step, median (min–max) | first 8 / last 8 steps, mean bytes | decode step p50 ms | join step (prefill of every row) bytes | GCs over the steps |");
        s.AppendLine("|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var a in allocations)
        {
            var firstEight = a.StepBytes.Take(8).Average();
            var lastEight = a.StepBytes.TakeLast(8).Average();
            s.AppendLine(Invariant($"| {a.Batch} | {a.Context} | {a.MedianStepBytes:F0} ({a.StepBytes.Min()}–{a.StepBytes.Max()}) | {firstEight:F0} / {lastEight:F0} | {BenchResults.Median(a.StepMs):F1} | {a.JoinBytes} | {a.Collections} |"));
        }
        results.Table(s.ToString());
    }

    private static void AddChecks(BenchResults results, IReadOnlyList<LoopSetting> servers, double[] best, int rows, IReadOnlyList<int> contexts)
    {
        foreach (var setting in servers)
        {
            results.AddCheck($"kv: server {setting} / raw best, {rows} streams", $"server tokens/s at {rows} streams ({setting}) / best raw loop tokens/s (max over loops x threads)",
                results.Runs(ServerCell(setting, rows)).Select((m, run) => m.SamplesPerSecond / best[run]), ThroughputTarget, atLeast: true);
        }
        if (contexts.Count < 2)
        {
            results.Note("Context check skipped: --contexts has one length.");
            return;
        }
        var low = contexts.Min();
        var high = contexts.Max();
        foreach (var setting in servers)
        {
            results.AddCheck($"kv: time per token, context {high} / {low}, server {setting}", $"client TPOT p50 at prompt {high} / at prompt {low}, one stream",
                results.Runs(ServerContextCell(setting, high)).Zip(results.Runs(ServerContextCell(setting, low)), (h, l) => h.Percentile(50) / l.Percentile(50)), ContextTarget, atLeast: false);
        }
    }

    /// <summary>What the report needs beyond the cells' measurements: the raw rounds' figures and the server's own time per token, per run.</summary>
    private sealed class Figures
    {
        public Dictionary<string, List<KvRawResult>> Raw { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, List<double>> ServerTpotMs { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, List<KvEngineProfile>> Engine { get; } = new(StringComparer.Ordinal);

        public void Add(string cell, KvEngineProfile engine) => (Engine.TryGetValue(cell, out var list) ? list : Engine[cell] = []).Add(engine);

        public void Add(string cell, KvRawResult raw) => (Raw.TryGetValue(cell, out var list) ? list : Raw[cell] = []).Add(raw);

        public void Add(string cell, double serverTpotMs) => (ServerTpotMs.TryGetValue(cell, out var list) ? list : ServerTpotMs[cell] = []).Add(serverTpotMs);
    }

    internal static string Errors(IReadOnlyList<Measurement> runs)
    {
        var errors = runs.SelectMany(m => m.ErrorsByStatus).GroupBy(e => e.Key).Select(g => $"{g.Key}={g.Sum(e => e.Value)}").ToArray();
        return errors.Length == 0 ? "0" : string.Join(", ", errors);
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
