using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>What a decoder sees of one sequence: its tokens so far and a slot for state it keeps between steps.</summary>
public abstract class DecoderSequence
{
    /// <summary>The prompt's tokens followed by the generated ones.</summary>
    public List<int> Tokens { get; } = [];

    /// <summary>
    /// How many of <see cref="Tokens"/> the decoder's own state already covers. A decoder with a KV cache feeds only the
    /// tokens after this and advances it; the window decoder recomputes the window every step and leaves it at 0.
    /// </summary>
    public int Processed { get; set; }

    /// <summary>The most tokens the sequence can reach: its prompt plus its max_tokens (what a KV cache reserves for it).</summary>
    public int MaxLength { get; init; }

    /// <summary>Per-sequence decoder state (its place in a KV cache); disposed when the sequence leaves the batch.</summary>
    public IDisposable? DecoderState { get; set; }

    /// <summary>
    /// Whether the last <see cref="IDecoder.Step"/> wrote this sequence's next-token logits: false while its prompt is
    /// still being read (chunked prefill), while it waits for room after reading it, and when it was preempted.
    /// </summary>
    public bool HasLogits { get; set; }

    /// <summary>
    /// Set by the decoder when it dropped the sequence's cache to make room for the others (preemption): its state is
    /// disposed and <see cref="Processed"/> is 0, and its tokens (prompt and generated) are computed again when it is
    /// admitted again. The scheduler takes it out of the batch, puts it back at the head of the queue and clears this.
    /// </summary>
    public bool Preempted { get; set; }
}

/// <summary>
/// One decode step over a batch (vLLM's "engine"): next-token logits for every running sequence. The continuous
/// batcher decides who is in the batch, asking the decoder whether a sequence's memory fits; the decoder computes.
/// </summary>
public interface IDecoder : IDisposable
{
    /// <summary>The most tokens (<see cref="DecoderSequence.MaxLength"/>) one sequence can ever be given; int.MaxValue when memory does not bound it.</summary>
    int MaxSequenceTokens { get; }

    /// <summary>Tokens of cache reserved by the sequences in the batch, and the most it holds (0 for a decoder without a cache).</summary>
    (long Used, long Capacity) CacheTokens { get; }

    /// <summary>
    /// Reserves the memory <paramref name="sequence"/> needs to join the batch (its <see cref="DecoderSequence.DecoderState"/>,
    /// released when that is disposed); false when it does not fit beside the sequences already in, so it waits.
    /// </summary>
    bool TryReserve(DecoderSequence sequence);

    /// <summary>
    /// One iteration: writes the next-token logits of <paramref name="batch"/>[i] to row i of <paramref name="logits"/>
    /// (rows of <see cref="GenerationSettings.LogitsWidth"/> floats) and sets its <see cref="DecoderSequence.HasLogits"/>,
    /// for every sequence that decoded a token or finished reading its prompt. A KV-cache decoder reads prompts in chunks
    /// within its per-iteration token budget, and may preempt sequences (<see cref="DecoderSequence.Preempted"/>). Every
    /// sequence in the batch was reserved. Throws <see cref="InferenceException"/> when the engine fails.
    /// </summary>
    void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings);

    /// <summary>Prompt tokens looked up in the prefix cache, and how many of them it held (vLLM's prefix_cache_queries and _hits); 0 without one.</summary>
    (long Queries, long Hits) PrefixCacheTokens { get; }
}
