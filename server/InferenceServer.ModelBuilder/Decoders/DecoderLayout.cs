namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>Where <see cref="DecoderModelWriter"/> puts the graph relative to the JSON and tokenizer files.</summary>
public enum DecoderLayout
{
    /// <summary>Everything in the directory itself, as <c>optimum-cli export onnx</c> writes it: <c>model.onnx</c> beside <c>config.json</c>.</summary>
    Root,

    /// <summary>
    /// As hub repositories such as onnx-community's lay it out: the graph (and its external data) under <c>onnx/</c>,
    /// the JSON and tokenizer files at the root.
    /// </summary>
    Hub,
}
