namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>The floating-point type of a decoder's weights, activations, KV cache and logits.</summary>
public enum DecoderPrecision
{
    /// <summary>FLOAT (32-bit): weights, activations, <c>past_key_values.*</c>, <c>present.*</c> and <c>logits</c>.</summary>
    Float32,

    /// <summary>
    /// FLOAT16: weights, activations, <c>past_key_values.*</c>, <c>present.*</c> and <c>logits</c>. The RMS norms and
    /// the attention softmax are computed in FLOAT and cast back, as Llama does in half precision.
    /// </summary>
    Float16,
}

/// <summary>Helpers for <see cref="DecoderPrecision"/>.</summary>
public static class DecoderPrecisionExtensions
{
    /// <summary>The ONNX element type of the precision.</summary>
    public static TensorElementKind ElementKind(this DecoderPrecision precision) => precision switch
    {
        DecoderPrecision.Float32 => TensorElementKind.Float,
        DecoderPrecision.Float16 => TensorElementKind.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Not a decoder precision."),
    };

    /// <summary>The <c>torch_dtype</c> a Hugging Face <c>config.json</c> names the precision by.</summary>
    public static string TorchDtype(this DecoderPrecision precision) => precision switch
    {
        DecoderPrecision.Float32 => "float32",
        DecoderPrecision.Float16 => "float16",
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "Not a decoder precision."),
    };
}
