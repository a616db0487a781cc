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

    /// <summary>
    /// As onnxruntime-genai's model builder exports a Llama-style model for the CPU (<see cref="GenAiDecoderGraph"/>):
    /// <c>model.onnx</c> with <c>com.microsoft::GroupQueryAttention</c> and no <c>position_ids</c> input,
    /// <c>genai_config.json</c> and the tokenizer files, all in the directory itself; no <c>config.json</c>.
    /// </summary>
    GenAi,
}
