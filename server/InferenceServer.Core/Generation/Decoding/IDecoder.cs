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
    /// Writes the next-token logits of <paramref name="batch"/>[i] to row i of <paramref name="logits"/> (rows of
    /// <see cref="GenerationSettings.LogitsWidth"/> floats). Every sequence in the batch was reserved. Throws
    /// <see cref="InferenceException"/> when the engine fails.
    /// </summary>
    void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings);
}
