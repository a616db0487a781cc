using System.Diagnostics;
using System.Numerics.Tensors;
using InferenceServer.Backends;
using InferenceServer.Generation;

namespace InferenceServer.Perf;

/// <summary>
/// Where an engine cell's time went, over every instance's steps in the window: the steps that only decoded (each row
/// one token) and the steps in which rows joined (their prompts computed, then copied into the batch).
/// </summary>
internal sealed class KvEngineProfile
{
    /// <summary>Decode-only steps: the whole <c>Step</c>, ms.</summary>
    public List<double> DecodeStepMs { get; } = [];

    /// <summary>Decode-only steps: the engine seam's <c>Execute</c> (binding, the ONNX Runtime run, results), ms.</summary>
    public List<double> DecodeExecuteMs { get; } = [];

    /// <summary>Steps in which rows joined: the whole <c>Step</c>, ms.</summary>
    public List<double> JoinStepMs { get; } = [];

    /// <summary>Rows that joined in those steps.</summary>
    public int JoinedRows { get; set; }

    public void Add(KvEngineProfile other)
    {
        DecodeStepMs.AddRange(other.DecodeStepMs);
        DecodeExecuteMs.AddRange(other.DecodeExecuteMs);
        JoinStepMs.AddRange(other.JoinStepMs);
        JoinedRows += other.JoinedRows;
    }

    /// <summary>A join step's time beyond a decode step (p50), per joined row: what computing and placing a prompt costs, ms.</summary>
    public double JoinMsPerRow => JoinedRows == 0 ? double.NaN : (JoinStepMs.Sum() - (JoinStepMs.Count * BenchResults.Median(DecodeStepMs))) / JoinedRows;
}

/// <summary>
/// The server's engine without the server: per instance a <see cref="KvCacheDecoder"/> over an
/// <see cref="IBackendModel"/> of its own (the continuous batcher's decoder and cache layout, its plan from the
/// server's defaults), stepped on a thread of its own as the batcher's decode loop steps it, with the same workload as
/// the server's streams: each row a sequence of its prompt and max_tokens, replaced by a new one the moment it ends
/// (no HTTP round trip), the first sequences shortened as the streams' first completions are (row i: i × max_tokens /
/// rows tokens) so that rows finish at different steps, as they do in the server's steady state. Greedy (argmax).
/// Between the raw loops (static batches, one prefill run for all rows) and the server (sampling, detokenizing,
/// scheduling, HTTP), this shows what the engine's own design costs: a prefill per joining row, padded ragged rows,
/// the cache's re-layouts when rows join and leave, and the engine seam's binding.
/// </summary>
internal sealed class KvEngineLoops(string modelFile, int maxModelLen, int runningPerInstance) : IDisposable
{
    private readonly Dictionary<int, List<(IBackendModel Model, KvCacheDecoder Decoder, int Width)>> _instances = [];

    /// <summary>
    /// <paramref name="setting"/>'s instances, the rows of <paramref name="prompts"/> split over them, through
    /// <paramref name="warmup"/> and then a measured <paramref name="duration"/>: a measurement whose requests are
    /// steps (latency = one instance's step, prefills included) and whose samples are the tokens of the steps that
    /// ended inside the window. Not <paramref name="staggered"/>: every row starts with max_tokens, so the rows join,
    /// run and leave together, one length at a time, as the raw loop's static batches do (no padding).
    /// </summary>
    public (Measurement Measurement, KvEngineProfile Profile) Run(LoopSetting setting, IReadOnlyList<int[]> prompts, int maxTokens, TimeSpan warmup, TimeSpan duration, bool staggered = true)
    {
        var instances = Instances(setting.Threads, setting.Loops);
        var rows = Enumerable.Range(0, setting.Loops).Select(i => prompts.Count / setting.Loops + (i < prompts.Count % setting.Loops ? 1 : 0)).Where(n => n > 0).ToArray();
        var started = Stopwatch.GetTimestamp();
        var from = started + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var to = from + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var recorders = new Recorder[rows.Length];
        var profiles = new KvEngineProfile[rows.Length];
        var tokens = new long[rows.Length];
        var threads = new Thread[rows.Length];
        var first = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            var instance = i;
            var firstRow = first;
            first += rows[i];
            recorders[i] = new Recorder();
            profiles[i] = new KvEngineProfile();
            threads[i] = new Thread(() => tokens[instance] = Decode(instances[instance].Decoder, instances[instance].Width, prompts, firstRow, rows[instance], maxTokens, staggered, from, to, recorders[instance], profiles[instance]))
            {
                IsBackground = true,
                Name = $"kv-engine-{instance}",
            };
            threads[i].Start();
        }
        foreach (var thread in threads)
        {
            thread.Join();
        }
        var m = Recorder.Finish(recorders, (to - from) / (double)Stopwatch.Frequency);
        var profile = new KvEngineProfile();
        foreach (var p in profiles)
        {
            profile.Add(p);
        }
        return (m with { Samples = tokens.Sum() }, profile);
    }

    public void Dispose()
    {
        foreach (var (model, decoder, _) in _instances.Values.SelectMany(l => l))
        {
            decoder.Dispose();
            model.Dispose();
        }
    }

    /// <summary>One instance's decode loop over its rows until <paramref name="to"/>; returns the tokens of the steps that ended in [from, to).</summary>
    private static long Decode(KvCacheDecoder decoder, int width, IReadOnlyList<int[]> prompts, int firstRow, int rows, int maxTokens, bool staggered, long from, long to, Recorder recorder, KvEngineProfile profile)
    {
        var batch = new List<DecoderSequence>(rows);
        var logits = new float[rows * width];
        long tokens = 0;
        try
        {
            for (var r = 0; r < rows; r++)
            {
                var row = firstRow + r;
                var shortened = staggered ? row * maxTokens / prompts.Count : 0;
                batch.Add(Join(decoder, prompts[row], shortened > 0 ? shortened : maxTokens));
            }
            while (Stopwatch.GetTimestamp() < to)
            {
                var joining = 0;
                foreach (var sequence in batch)
                {
                    joining += sequence.Processed < sequence.Tokens.Count - 1 ? 1 : 0;
                }
                var timings = default(ExecutionTimings);
                var start = Stopwatch.GetTimestamp();
                decoder.Step(batch, logits, ref timings);
                var end = Stopwatch.GetTimestamp();
                if (end >= from)
                {
                    recorder.Success(start);
                    foreach (var sequence in batch)
                    {
                        tokens += sequence.HasLogits ? 1 : 0;
                    }
                    var ms = (end - start) * 1000.0 / Stopwatch.Frequency;
                    if (joining == 0)
                    {
                        profile.DecodeStepMs.Add(ms);
                        profile.DecodeExecuteMs.Add((timings.InputTicks + timings.InferTicks + timings.OutputTicks) * 1000.0 / Stopwatch.Frequency);
                    }
                    else
                    {
                        profile.JoinStepMs.Add(ms);
                        profile.JoinedRows += joining;
                    }
                }
                for (var b = 0; b < batch.Count; b++)
                {
                    var sequence = (Sequence)batch[b];
                    if (!sequence.HasLogits)
                    {
                        // Its prompt is still being read (chunked prefill): no token yet.
                        continue;
                    }
                    var token = TensorPrimitives.IndexOfMax(logits.AsSpan(b * width, width));
                    if (++sequence.Generated < sequence.Target)
                    {
                        sequence.Tokens.Add(token);
                        continue;
                    }
                    sequence.DecoderState?.Dispose();
                    batch[b] = Join(decoder, prompts[firstRow + b], maxTokens);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            recorder.Error(e);
        }
        finally
        {
            foreach (var sequence in batch)
            {
                sequence.DecoderState?.Dispose();
            }
        }
        return tokens;
    }

    private static Sequence Join(KvCacheDecoder decoder, int[] prompt, int target)
    {
        var sequence = new Sequence(prompt, target);
        return decoder.TryReserve(sequence) ? sequence : throw new InvalidOperationException($"the KV cache has no room for a sequence of {sequence.MaxLength} tokens beside the others");
    }

    private List<(IBackendModel Model, KvCacheDecoder Decoder, int Width)> Instances(int threads, int count)
    {
        if (!_instances.TryGetValue(threads, out var list))
        {
            _instances[threads] = list = [];
        }
        while (list.Count < count)
        {
            var model = KvEngineModel.Load(modelFile, threads);
            var settings = KvEngineModel.Settings(model, maxModelLen, runningPerInstance);
            list.Add((model, new KvCacheDecoder(model, settings, KvCachePlan.Create(settings)), settings.LogitsWidth));
        }
        return list;
    }

    /// <summary>One stream's request as the engine sees it: its prompt, then its generated tokens, up to its target.</summary>
    private sealed class Sequence : DecoderSequence
    {
        public Sequence(int[] prompt, int target)
        {
            Tokens.Capacity = prompt.Length + target;
            Tokens.AddRange(prompt);
            MaxLength = prompt.Length + target;
            Target = target;
        }

        public int Target { get; }

        public int Generated { get; set; }
    }
}
