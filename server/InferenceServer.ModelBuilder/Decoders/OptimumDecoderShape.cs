namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The shapes of a decoder's Optimum <c>text-generation-with-past</c> interface (<see cref="OptimumDecoderLayout"/>):
/// what a caller needs to feed it and read it, whatever the architecture behind it.
/// </summary>
/// <param name="Layers">Layers, each with one <c>past_key_values.{i}.key/value</c> pair and one <c>present.{i}.key/value</c> pair.</param>
/// <param name="KvHeads">Heads of the cached keys and values (axis 1 of the cache tensors).</param>
/// <param name="HeadDim">Width of one head (axis 3 of the cache tensors).</param>
/// <param name="Vocab">Columns of <c>logits</c>.</param>
/// <param name="Precision">Element type of the cache tensors and the logits.</param>
public sealed record OptimumDecoderShape(int Layers, int KvHeads, int HeadDim, int Vocab, DecoderPrecision Precision);
