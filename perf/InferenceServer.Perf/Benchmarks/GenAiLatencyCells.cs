using System.Diagnostics;
using System.Text;
using static InferenceServer.Perf.GenAiBenchmark;

namespace InferenceServer.Perf;

/// <summary>
/// <c>bench genai</c>'s latency cells, on one instance with a thread per core (the long prompt, the running streams and
/// the prefix cache all in one engine instance):
/// <list type="bullet">
/// <item><b>Chunked prefill</b>: N streams (default 8) with prompts of ~256 ids generating continuously; the time between
/// consecutive tokens of each stream (TPOT) over windows with nothing else running (before and after), and while ONE
/// request with a long prompt (default 2,048 ids, max_tokens 1) is sent and prefilled; p99 of each, and that request's
/// TTFT. Per served configuration: the server's default, and each <c>generation.max_num_batched_tokens</c> value.</item>
/// <item><b>Prefix caching</b>: requests of a 1,024-id system prompt and a distinct 16-id suffix, max_tokens 1, cold (a
/// fresh system prompt each) and warm (one system prompt, served once before) taking turns; TTFT of each, and the
/// server's <c>vllm:prefix_cache_*</c> and <c>vllm:num_preemptions_total</c> counters over them; and with
/// <c>generation.enable_prefix_caching: false</c> the warm requests again.</item>
/// </list>
/// A configuration whose <c>config.yaml</c> the server refuses (a key it does not know yet) is skipped, with a note.
/// </summary>
internal sealed class GenAiLatencyCells(BenchSession session, HttpClient metrics, GenAiLatencyCells.Plan plan, int vocab)
{
    private const double ChunkTarget = 2.0;
    private const double PrefixTarget = 0.25;
    private const string DefaultModel = "genai_latency";
    private const string NoPrefixModel = "genai_no_prefix_cache";
    private static readonly string[] Counters = ["vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total"];

    private readonly Dictionary<string, string> _refused = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<double>> _longTtftMs = new(StringComparer.Ordinal);
    private readonly List<IReadOnlyDictionary<string, double?>> _counterDeltas = [];

    /// <summary>What the latency cells run: their workloads, the values under test and the configuration they are served in.</summary>
    internal sealed record Plan(int ChunkStreams, int ChunkContext, int LongPrompt, IReadOnlyList<int> BatchedTokens, int PrefixTokens, int SuffixTokens, int PrefixRequests, int ContextLength, LoopSetting Setting)
    {
        public static Plan From(BenchOptions o) => new(o.ChunkStreams ?? 8, o.ChunkContext ?? 256, o.LongPrompt ?? 2048, o.BatchedTokens ?? [24, 64, 256, 2048],
            o.PrefixTokens ?? 1024, o.SuffixTokens ?? 16, o.PrefixRequests ?? 5, o.ContextLength ?? 4096, new LoopSetting(1, Environment.ProcessorCount));
    }

    private static string ChunkModel(int batched) => $"genai_batched_{batched}";

    private static string ChunkLabel(string model) => model == DefaultModel ? "server default" : "max_num_batched_tokens " + model[(model.LastIndexOf('_') + 1)..];

    private IEnumerable<string> ChunkModels => new[] { DefaultModel }.Concat(plan.BatchedTokens.Select(ChunkModel));

    /// <summary>The served configurations: the default (no generation settings), one per max_num_batched_tokens value, and prefix caching off.</summary>
    public static void AddServed(TempRepository repository, string directory, Plan plan)
    {
        KvDecoderModel.AddServed(repository, directory, plan.Setting, DefaultModel);
        foreach (var batched in plan.BatchedTokens)
        {
            KvDecoderModel.AddServed(repository, directory, plan.Setting, ChunkModel(batched), [("max_num_batched_tokens", batched.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        }
        KvDecoderModel.AddServed(repository, directory, plan.Setting, NoPrefixModel, [("enable_prefix_caching", "false")]);
    }

    /// <summary>Loads each configuration once: those the server refuses are left out of every run (and named in the report).</summary>
    public async Task ProbeAsync()
    {
        foreach (var model in ChunkModels.Append(NoPrefixModel))
        {
            try
            {
                await ModelControl.LoadAsync(session, model).ConfigureAwait(false);
                await ModelControl.UnloadAsync(session, model).ConfigureAwait(false);
            }
            catch (Exception e) when (e is global::Grpc.Core.RpcException or TimeoutException or InvalidOperationException)
            {
                _refused[model] = e is global::Grpc.Core.RpcException r ? r.Status.Detail : e.Message;
                BenchSession.Log($"{model}: the server refused it, skipped: {_refused[model]}");
            }
        }
    }

    public async Task RunAsync(int run)
    {
        foreach (var model in ChunkModels.Where(m => !_refused.ContainsKey(m)))
        {
            await ModelControl.LoadAsync(session, model).ConfigureAwait(false);
            await ChunkAsync(model, run).ConfigureAwait(false);
            if (model == DefaultModel)
            {
                await PrefixAsync(model, run, cold: true).ConfigureAwait(false);
            }
            await ModelControl.UnloadAsync(session, model).ConfigureAwait(false);
        }
        if (!_refused.ContainsKey(NoPrefixModel))
        {
            await ModelControl.LoadAsync(session, NoPrefixModel).ConfigureAwait(false);
            await PrefixAsync(NoPrefixModel, run, cold: false).ConfigureAwait(false);
            await ModelControl.UnloadAsync(session, NoPrefixModel).ConfigureAwait(false);
        }
    }

    private int[] Ids(Random random, int count)
    {
        var ids = new int[count];
        for (var i = 0; i < count; i++)
        {
            ids[i] = random.Next(3, vocab);
        }
        return ids;
    }

    private static double Seconds(long from, long to) => (to - from) / (double)Stopwatch.Frequency;

    private static long After(long from, double seconds) => from + (long)(seconds * Stopwatch.Frequency);

    /// <summary>The running streams, the undisturbed windows around the long prompt, and the long prompt's request.</summary>
    private async Task ChunkAsync(string model, int run)
    {
        const double Window = 2.0;
        var streams = plan.ChunkStreams;
        using var client = new CompletionClient(session.Server.Connection.HttpAddress, model, streams + 2);
        var random = new Random(run * 7919 + model.Length);
        var arrivals = Enumerable.Range(0, streams).Select(_ => new List<long>(4096)).ToArray();
        var started = new int[streams];
        var errors = new Recorder();
        using var stop = new CancellationTokenSource();
        var bodies = Enumerable.Range(0, streams).Select(_ => client.Body(Ids(random, plan.ChunkContext), plan.ContextLength - plan.ChunkContext)).ToArray();
        var cpu = CpuSample.Take();
        var tasks = Enumerable.Range(0, streams).Select(i => Task.Run(async () =>
        {
            try
            {
                await client.StreamAsync(bodies[i], (t, _) =>
                {
                    arrivals[i].Add(t);
                    Volatile.Write(ref started[i], 1);
                }, null, stop.Token).ConfigureAwait(false);
                lock (errors)
                {
                    errors.Error("client:finished-early", "a running stream ended before the measurement did");
                }
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                // Stopped after the measurement, as intended.
            }
            catch (Exception e) when (e is HttpRequestException or CompletionStreamException or IOException or OperationCanceledException)
            {
                lock (errors)
                {
                    errors.Error(e);
                }
            }
        })).ToArray();
        var waitUntil = After(Stopwatch.GetTimestamp(), 120);
        while (Enumerable.Range(0, streams).Any(i => Volatile.Read(ref started[i]) == 0) && Stopwatch.GetTimestamp() < waitUntil && !tasks.All(t => t.IsCompleted))
        {
            await Task.Delay(20).ConfigureAwait(false);
        }
        await Task.Delay(TimeSpan.FromSeconds(Math.Max(1, session.Options.WarmupSeconds))).ConfigureAwait(false);
        var t0 = Stopwatch.GetTimestamp();
        await Task.Delay(TimeSpan.FromSeconds(Window)).ConfigureAwait(false);
        var t1 = Stopwatch.GetTimestamp();
        var longBody = client.Body(Ids(random, plan.LongPrompt), 1);
        var sent = Stopwatch.GetTimestamp();
        long firstToken = 0, done;
        try
        {
            using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
            var outcome = await client.StreamAsync(longBody, null, null, timeout.Token).ConfigureAwait(false);
            done = Stopwatch.GetTimestamp();
            firstToken = outcome.FirstText > 0 ? outcome.FirstText : done;
        }
        catch (Exception e) when (e is HttpRequestException or CompletionStreamException or IOException or OperationCanceledException)
        {
            done = Stopwatch.GetTimestamp();
            errors.Error(e);
        }
        await Task.Delay(TimeSpan.FromSeconds(0.3)).ConfigureAwait(false);
        var t2 = Stopwatch.GetTimestamp();
        await Task.Delay(TimeSpan.FromSeconds(Window)).ConfigureAwait(false);
        var t3 = Stopwatch.GetTimestamp();
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        var used = CpuSample.Take().Since(cpu);

        // Each gap between two tokens of a stream belongs to the window its later token arrived in; the disturbed one
        // runs from the long request's sending to 0.1 s after its answer (the stalled streams' next token).
        var quiet = new List<double>();
        var disturbed = new List<double>();
        var disturbedUntil = After(done, 0.1);
        foreach (var times in arrivals)
        {
            for (var k = 1; k < times.Count; k++)
            {
                var gap = Seconds(times[k - 1], times[k]) * 1000;
                var at = times[k];
                if ((at >= t0 && at < t1) || (at >= t2 && at < t3))
                {
                    quiet.Add(gap);
                }
                else if (at >= sent && at < disturbedUntil)
                {
                    disturbed.Add(gap);
                }
            }
        }
        var ttft = firstToken > 0 ? Seconds(sent, firstToken) * 1000 : double.NaN;
        (_longTtftMs.TryGetValue(model, out var list) ? list : _longTtftMs[model] = []).Add(ttft);
        var label = ChunkLabel(model);
        var detail = Invariant($"{streams} streams with {plan.ChunkContext}-id prompts; the {plan.LongPrompt}-id prompt's TTFT {ttft:F0} ms; {errors.Errors} error(s)");
        Record(ChunkCell(model, false), $"{label}: the running streams' time between tokens with nothing else running ({Window} s before and after); latency = one gap", quiet, Window * 2, errors, used, detail);
        Record(ChunkCell(model, true), $"{label}: the running streams' time between tokens while the {plan.LongPrompt}-id prompt is prefilled; latency = one gap", disturbed, Seconds(sent, disturbedUntil), new Recorder(), used, detail);
    }

    private void Record(string name, string description, List<double> values, double seconds, Recorder errors, (double Machine, double Process) used, string detail)
    {
        values.Sort();
        var m = new Measurement(values.Count, errors.Errors, seconds, [.. values], errors.FirstError) { ErrorsByStatus = errors.ErrorsByStatus };
        session.Record(new CellInfo(name, "server", "openai-sse", plan.ChunkStreams, description), m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = detail });
    }

    private static string ChunkCell(string model, bool disturbed) => $"chunk {ChunkLabel(model)} {(disturbed ? "disturbed" : "undisturbed")}";

    private static string PrefixCell(string kind) => $"prefix {kind}";

    /// <summary>
    /// Cold and warm requests taking turns (<paramref name="cold"/>), or with caching off only the warm ones (the same
    /// system prompt every time); TTFT = request sent → its one token (or the end of its stream).
    /// </summary>
    private async Task PrefixAsync(string model, int run, bool cold)
    {
        using var client = new CompletionClient(session.Server.Connection.HttpAddress, model, 2);
        var random = new Random(run * 104729 + (cold ? 1 : 2));
        var system = Ids(random, plan.PrefixTokens);
        byte[] Body(int[] prefix) => client.Body([.. prefix, .. Ids(random, plan.SuffixTokens)], 1);
        var kinds = cold ? new[] { "cold", "warm" } : ["warm, caching off"];
        var ttft = kinds.ToDictionary(k => k, _ => new List<double>());
        var errors = kinds.ToDictionary(k => k, _ => new Recorder());
        // Unmeasured: the system prompt served once (the warm requests' prefix), and a cold request for the code paths.
        await TtftAsync(client, Body(system), new Recorder()).ConfigureAwait(false);
        await TtftAsync(client, Body(Ids(random, plan.PrefixTokens)), new Recorder()).ConfigureAwait(false);
        var before = await PrometheusCounters.ScrapeAsync(metrics, model, Counters).ConfigureAwait(false);
        var cpu = CpuSample.Take();
        var began = Stopwatch.GetTimestamp();
        for (var i = 0; i < plan.PrefixRequests; i++)
        {
            foreach (var kind in kinds)
            {
                var t = await TtftAsync(client, Body(kind == "cold" ? Ids(random, plan.PrefixTokens) : system), errors[kind]).ConfigureAwait(false);
                if (!double.IsNaN(t))
                {
                    ttft[kind].Add(t);
                }
            }
        }
        var used = CpuSample.Take().Since(cpu);
        var after = await PrometheusCounters.ScrapeAsync(metrics, model, Counters).ConfigureAwait(false);
        var deltas = Counters.ToDictionary(c => c, c => before?[c] is { } b && after?[c] is { } a ? a - b : (double?)null);
        if (cold)
        {
            _counterDeltas.Add(deltas);
        }
        var counters = string.Join(", ", deltas.Select(d => $"{d.Key} {(d.Value is { } v ? Invariant($"+{v:F0}") : "not exported")}"));
        foreach (var kind in kinds)
        {
            var values = ttft[kind];
            values.Sort();
            var m = new Measurement(values.Count, errors[kind].Errors, Seconds(began, Stopwatch.GetTimestamp()), [.. values], errors[kind].FirstError) { ErrorsByStatus = errors[kind].ErrorsByStatus };
            session.Record(new CellInfo(PrefixCell(kind), "server", "openai-sse", 1, Invariant($"{model}: {plan.PrefixTokens}-id system prompt ({(kind == "cold" ? "fresh each request" : "the same, served before")}) + {plan.SuffixTokens} distinct ids, max_tokens 1; latency = TTFT")), m,
                new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null) { Detail = $"over the cold and warm requests: {counters}" });
        }
    }

    private static async Task<double> TtftAsync(CompletionClient client, byte[] body, Recorder errors)
    {
        try
        {
            using var timeout = new CancellationTokenSource(LoadLoop.RequestTimeout);
            var outcome = await client.StreamAsync(body, null, null, timeout.Token).ConfigureAwait(false);
            var end = Stopwatch.GetTimestamp();
            return Seconds(outcome.Sent, outcome.FirstText > 0 ? outcome.FirstText : end) * 1000;
        }
        catch (Exception e) when (e is HttpRequestException or CompletionStreamException or IOException or OperationCanceledException)
        {
            errors.Error(e);
            return double.NaN;
        }
    }

    private double ChunkRatio(string model, int run) =>
        session.Results.Runs(ChunkCell(model, true))[run].Percentile(99) / session.Results.Runs(ChunkCell(model, false))[run].Percentile(99);

    public void AddTables(BenchResults results)
    {
        var runs = session.Options.Runs;
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Chunked prefill, {plan.Setting.Loops} instance x {plan.Setting.Threads} threads: {plan.ChunkStreams} running streams (prompts of {plan.ChunkContext} ids), ONE {plan.LongPrompt}-id prompt (max_tokens 1) sent among them (medians over the runs, (min–max)):")).AppendLine();
        s.AppendLine("| configuration | TPOT p50 undisturbed ms | TPOT p99 undisturbed ms | TPOT p99 disturbed ms | disturbed / undisturbed p99 (per run) | median | long prompt TTFT ms | gaps undisturbed / disturbed | errors |");
        s.AppendLine("|---|--:|--:|--:|---|--:|--:|---|---|");
        foreach (var model in ChunkModels)
        {
            if (_refused.TryGetValue(model, out var why))
            {
                s.AppendLine($"| {ChunkLabel(model)} | | | | skipped: the server refused the configuration (see the notes) | | | | |");
                continue;
            }
            var quiet = results.Runs(ChunkCell(model, false));
            var busy = results.Runs(ChunkCell(model, true));
            var ratios = Enumerable.Range(0, runs).Select(run => ChunkRatio(model, run)).ToArray();
            s.AppendLine(Invariant($"| {ChunkLabel(model)} | {BenchResults.Median(quiet.Select(m => m.Percentile(50))):F2} | {BenchResults.Median(quiet.Select(m => m.Percentile(99))):F2} | {BenchResults.Median(busy.Select(m => m.Percentile(99))):F2} | {string.Join(" / ", ratios.Select(BenchResults.Ratio))} | {BenchResults.Ratio(BenchResults.Median(ratios))} | {GenerateRawSweep.Spread(_longTtftMs[model])} | {BenchResults.Median(quiet.Select(m => (double)m.Requests)):F0} / {BenchResults.Median(busy.Select(m => (double)m.Requests)):F0} | {KvBenchmark.Errors(quiet)} |"));
        }
        s.AppendLine().Append("TPOT here: the gap between two consecutive tokens of one running stream; undisturbed = the gaps ending in the 2 s before the long prompt is sent and the 2 s starting 0.3 s after its answer; disturbed = those ending between its sending and 0.1 s after its answer. max_num_batched_tokens: tokens computed per engine iteration and instance, one per running sequence plus a piece of the prompt being read.");
        results.Table(s.ToString());

        var p = new StringBuilder();
        p.AppendLine(Invariant($"Prefix caching, {plan.Setting.Loops} instance x {plan.Setting.Threads} threads: {plan.PrefixTokens}-id system prompt + {plan.SuffixTokens} distinct ids, max_tokens 1, {plan.PrefixRequests} requests per kind and run (TTFT medians over the runs of each run's median, (min–max)):")).AppendLine();
        p.AppendLine("| requests | TTFT p50 ms | / cold (per run) | median |");
        p.AppendLine("|---|--:|---|--:|");
        foreach (var kind in new[] { "cold", "warm", "warm, caching off" })
        {
            if (!results.Has(PrefixCell(kind)))
            {
                p.AppendLine($"| {kind} | | skipped: {(kind.Contains("off", StringComparison.Ordinal) && _refused.ContainsKey(NoPrefixModel) ? "the server refused enable_prefix_caching: false (see the notes)" : "not measured")} | |");
                continue;
            }
            var ratios = PrefixRatios(results, kind);
            p.AppendLine(Invariant($"| {kind} | {GenerateRawSweep.Spread(results.Runs(PrefixCell(kind)).Select(m => m.Percentile(50)))} | {string.Join(" / ", ratios.Select(BenchResults.Ratio))} | {BenchResults.Ratio(BenchResults.Median(ratios))} |"));
        }
        p.AppendLine().Append("Server counters over each run's cold and warm requests (server default configuration): ");
        p.Append(string.Join("; ", Counters.Select(c => $"{c} " + (_counterDeltas.All(d => d[c] is null) ? "not exported" : "+" + string.Join(" / ", _counterDeltas.Select(d => d[c] is { } v ? Invariant($"{v:F0}") : "n/a")) + " per run"))) + ".");
        results.Table(p.ToString());
    }

    private IReadOnlyList<double> PrefixRatios(BenchResults results, string kind)
    {
        var cold = results.Runs(PrefixCell("cold"));
        return results.Runs(PrefixCell(kind)).Select((m, run) => m.Percentile(50) / cold[run].Percentile(50)).ToArray();
    }

    public void AddChecks(BenchResults results, int runs)
    {
        var measured = ChunkModels.Where(m => !_refused.ContainsKey(m)).ToArray();
        var tested = measured.Where(m => m != DefaultModel).ToArray();
        var candidates = tested.Length > 0 ? tested : measured;
        if (candidates.Length > 0)
        {
            var chosen = candidates.MinBy(m => BenchResults.Median(Enumerable.Range(0, runs).Select(run => ChunkRatio(m, run))))!;
            results.AddCheck($"genai: chunked prefill, {ChunkLabel(chosen)}{(tested.Length > 0 ? " (the best value)" : " (no max_num_batched_tokens accepted)")}",
                $"p99 TPOT of {plan.ChunkStreams} running streams while one {plan.LongPrompt}-id prompt is prefilled / undisturbed p99",
                Enumerable.Range(0, runs).Select(run => ChunkRatio(chosen, run)), ChunkTarget, atLeast: false);
        }
        if (results.Has(PrefixCell("warm")))
        {
            results.AddCheck("genai: prefix caching, warm / cold TTFT", $"TTFT p50 of a request whose {plan.PrefixTokens}-id system prompt was served before / of one with a fresh system prompt",
                PrefixRatios(results, "warm"), PrefixTarget, atLeast: false);
        }
        foreach (var (model, why) in _refused)
        {
            results.Note($"Skipped: {model} (config.yaml with generation.{(model == NoPrefixModel ? "enable_prefix_caching: false" : ChunkLabel(model).Replace(" ", ": ", StringComparison.Ordinal))}) did not load: {Short(why)}");
        }
    }

    public object Json() => new
    {
        plan = new { plan.ChunkStreams, plan.ChunkContext, plan.LongPrompt, plan.BatchedTokens, plan.PrefixTokens, plan.SuffixTokens, plan.PrefixRequests, setting = plan.Setting.ToString() },
        refused = _refused,
        long_prompt_ttft_ms = _longTtftMs,
        prefix_counter_deltas = _counterDeltas,
    };

    private static string Short(string text) => (text.Length > 200 ? text[..200] + "…" : text).Replace('|', '/').Replace('\n', ' ');
}
