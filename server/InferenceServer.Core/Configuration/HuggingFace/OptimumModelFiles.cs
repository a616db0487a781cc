namespace InferenceServer.Configuration.HuggingFace;

/// <summary>
/// Where Hugging Face exports put an ONNX graph inside a version directory, so a model without
/// <c>default_model_filename</c> loads whichever layout it came in.
/// </summary>
public static class OptimumModelFiles
{
    /// <summary>
    /// The ONNX files looked for, in order: <c>model.onnx</c> (the server's default and Optimum's current name),
    /// <c>decoder_model_merged.onnx</c> (older Optimum's merged decoder), then the same two under <c>onnx/</c>, where hub
    /// repositories such as onnx-community's keep their graphs (with variants like <c>onnx/model_fp16.onnx</c> that
    /// <c>default_model_filename</c> can name) and their JSON and tokenizer files at the root.
    /// </summary>
    public static IReadOnlyList<string> Onnx { get; } = ["model.onnx", "decoder_model_merged.onnx", "onnx/model.onnx", "onnx/decoder_model_merged.onnx"];

    /// <summary>
    /// The files to look for, in order, for a backend whose default model file is <paramref name="defaultModelFilename"/>:
    /// <see cref="Onnx"/> for <c>model.onnx</c>, else that file alone.
    /// </summary>
    public static IReadOnlyList<string> For(string defaultModelFilename) =>
        string.Equals(defaultModelFilename, Onnx[0], StringComparison.Ordinal) ? Onnx : [defaultModelFilename];
}
