using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The small model of <see cref="SmallDecoderFixture"/> (same options and seed, so the same weights) written in the
/// legacy merged layout (<see cref="LegacyMergedDecoderGraph"/>), opened once per test class.
/// </summary>
public sealed class LegacyMergedDecoderFixture : IDisposable
{
    public LegacyMergedDecoderFixture()
    {
        ModelBytes = DecoderModelWriter.EmbeddedModelBytes(Options);
        Session = new DecoderSession(Options, ModelBytes);
    }

    public static DecoderOptions Options { get; } = SmallDecoderFixture.Options with { LegacyMerged = true };

    /// <summary>The serialized model (weights inside).</summary>
    public byte[] ModelBytes { get; }

    internal DecoderSession Session { get; }

    public void Dispose() => Session.Dispose();
}
