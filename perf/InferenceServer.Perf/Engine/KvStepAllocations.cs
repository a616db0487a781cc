using System.Diagnostics;
using System.Numerics.Tensors;
using InferenceServer.Backends;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Configuration;
using InferenceServer.Generation;

namespace InferenceServer.Perf;

/// <summary>Managed allocation of the server's KV engine at one context: bytes per decode step, and the step's time.</summary>
/// <param name="Context">Tokens in each row's cache at the first measured step (the prompt's length).</param>
/// <param name="Batch">Sequences stepped together.</param>
/// <param name="JoinBytes">Bytes allocated by the first step, which computes every prompt (prefill) and joins the rows.</param>
/// <param name="StepBytes">Bytes allocated by each measured decode step, in order.</param>
/// <param name="StepMs">Each measured decode step's time, in order.</param>
/// <param name="Collections">Garbage collections (any generation) during the measured steps.</param>
internal sealed record KvAllocationFigure(int Context, int Batch, long JoinBytes, long[] StepBytes, double[] StepMs, int Collections)
{
    public double MedianStepBytes => BenchResults.Median(StepBytes.Select(b => (double)b));
}

/// <summary>
/// Managed allocation per decode step of the server's engine itself: a <see cref="KvCacheDecoder"/> built directly over
/// an <see cref="IBackendModel"/> from <see cref="OnnxRuntimeBackend"/> (as the continuous batcher builds one per
/// instance, without the batcher, the sampler or the protocol), stepping a batch of sequences greedily, with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> read around each <see cref="KvCacheDecoder.Step"/> (the engine
/// runs on the calling thread). The first steps after the join are left out of the figures (first-call costs).
/// </summary>
internal static class KvStepAllocations
{
    private const int Unmeasured = 3;

    /// <summary>Measures <paramref name="steps"/> decode steps at each of <paramref name="contexts"/> with <paramref name="prompts"/> (their first <c>context</c> ids).</summary>
    public static IReadOnlyList<KvAllocationFigure> Measure(string modelFile, int threads, int maxModelLen, IReadOnlyList<int[]> prompts, IReadOnlyList<int> contexts, int steps)
    {
        using var model = KvEngineModel.Load(modelFile, threads);
        var settings = KvEngineModel.Settings(model, maxModelLen, prompts.Count);
        var figures = new List<KvAllocationFigure>();
        foreach (var context in contexts)
        {
            figures.Add(MeasureOne(model, settings, prompts.Select(p => p[..context]).ToArray(), steps));
        }
        return figures;
    }

    private static KvAllocationFigure MeasureOne(IBackendModel model, GenerationSettings settings, IReadOnlyList<int[]> prompts, int steps)
    {
        // The join step reads every prompt whole (no chunking), so that every later step is a decode step.
        settings = settings with { MaxNumBatchedTokens = int.MaxValue };
        var plan = KvCachePlan.Create(settings);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var width = settings.LogitsWidth;
        var batch = new List<DecoderSequence>(prompts.Count);
        foreach (var prompt in prompts)
        {
            var sequence = new Sequence(prompt, prompt.Length + steps + Unmeasured + 1);
            if (!decoder.TryReserve(sequence))
            {
                throw new InvalidOperationException($"the KV cache has no room for {prompts.Count} sequences of {sequence.MaxLength} tokens");
            }
            batch.Add(sequence);
        }
        var logits = new float[batch.Count * width];
        var bytes = new long[steps];
        var times = new double[steps];
        long join = 0;
        var collections = 0;
        try
        {
            for (var step = -1; step < Unmeasured + steps; step++)
            {
                var timings = default(ExecutionTimings);
                if (step == Unmeasured)
                {
                    collections = GC.CollectionCount(0);
                }
                var before = GC.GetAllocatedBytesForCurrentThread();
                var started = Stopwatch.GetTimestamp();
                decoder.Step(batch, logits, ref timings);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (step == -1)
                {
                    join = allocated;
                }
                else if (step >= Unmeasured)
                {
                    bytes[step - Unmeasured] = allocated;
                    times[step - Unmeasured] = elapsed;
                }
                for (var b = 0; b < batch.Count; b++)
                {
                    batch[b].Tokens.Add(TensorPrimitives.IndexOfMax(logits.AsSpan(b * width, width)));
                }
            }
            collections = GC.CollectionCount(0) - collections;
        }
        finally
        {
            foreach (var sequence in batch)
            {
                sequence.DecoderState?.Dispose();
            }
        }
        return new KvAllocationFigure(prompts[0].Length, prompts.Count, join, bytes, times, collections);
    }

    /// <summary>A sequence stepped by hand, its token list sized up front so that appending never allocates.</summary>
    private sealed class Sequence : DecoderSequence
    {
        public Sequence(int[] prompt, int maxLength)
        {
            Tokens.Capacity = maxLength;
            Tokens.AddRange(prompt);
            MaxLength = maxLength;
        }
    }
}
