using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The small model the decoder tests run: 2 layers, width 64, 4 query heads over 2 KV heads (grouped-query), vocabulary
/// 256, FP32, weights inside the model, opened once per test class.
/// </summary>
public sealed class SmallDecoderFixture : IDisposable
{
    /// <summary>Absolute tolerance of FP32 logits (KV decoding against full recomputation, batched against alone).</summary>
    public const float Fp32Tolerance = 1e-4f;

    public SmallDecoderFixture()
    {
        Weights = new DecoderWeights(Options);
        Session = new DecoderSession(Options, DecoderGraph.Build(Weights).ToModelBytes());
    }

    public static DecoderOptions Options { get; } = new()
    {
        Layers = 2,
        DModel = 64,
        Heads = 4,
        KvHeads = 2,
        Vocab = 256,
        MaxPositions = 128,
    };

    public DecoderWeights Weights { get; }

    internal DecoderSession Session { get; }

    public void Dispose() => Session.Dispose();

    /// <summary>A prompt of <paramref name="length"/> tokens drawn (deterministically) from above the special ids.</summary>
    public static long[] Prompt(string name, int length)
    {
        var random = new SeededUniform(99, name);
        return Enumerable.Range(0, length).Select(_ => 3 + (long)(random.NextUInt64() % (ulong)(Options.Vocab - 3))).ToArray();
    }

    public static long[] Range(long start, int count) => Enumerable.Range(0, count).Select(i => start + i).ToArray();
}
