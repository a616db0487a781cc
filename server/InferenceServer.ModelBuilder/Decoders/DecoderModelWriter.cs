using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// Writes a decoder-only language model directory as <c>optimum-cli export onnx --task text-generation-with-past</c>
/// lays it out: <c>model.onnx</c> (<see cref="DecoderGraph"/>; with <see cref="DecoderOptions.ExternalData"/> its
/// weights in <c>model.onnx_data</c>), <c>config.json</c>, <c>generation_config.json</c> and, with
/// <see cref="DecoderOptions.Tokenizer"/>, <c>tokenizer.json</c> and <c>tokenizer_config.json</c>; with
/// <see cref="DecoderLayout.Hub"/> the graph goes under <c>onnx/</c>; with <see cref="DecoderOptions.LegacyMerged"/>,
/// <c>decoder_model_merged.onnx</c> (<see cref="LegacyMergedDecoderGraph"/>; its weights in
/// <c>decoder_model_merged.onnx_data</c>) instead of the model files, as older Optimum versions wrote it; with
/// <see cref="DecoderLayout.GenAi"/>, onnxruntime-genai's model-builder layout instead (<see cref="GenAiDecoderGraph"/>,
/// <c>model.onnx</c> [+ <c>model.onnx.data</c>], <c>genai_config.json</c>, the tokenizer files, no <c>config.json</c>).
/// Deterministic: the same options always give the same bytes.
/// </summary>
public static class DecoderModelWriter
{
    /// <summary>Protobuf cannot serialize a message of 2 GB or more; a model that large needs external data.</summary>
    private const long MaxEmbeddedBytes = int.MaxValue;

    /// <summary>The model of <paramref name="options"/> with its weights inside (ignores <see cref="DecoderOptions.ExternalData"/>).</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the weights are too large to embed.</exception>
    public static byte[] EmbeddedModelBytes(DecoderOptions options)
    {
        var weights = new DecoderWeights(options);
        CheckEmbeddable(weights);
        return Graph(weights).ToModelBytes();
    }

    /// <summary>
    /// The model of <paramref name="options"/> with every initializer of at least
    /// <see cref="OnnxExternalData.DefaultSizeThreshold"/> bytes moved to <see cref="ExternalDataFileName"/>.
    /// </summary>
    public static (byte[] Model, byte[] Data) ExternalModelBytes(DecoderOptions options)
    {
        var weights = new DecoderWeights(options);
        ModelProto model = Graph(weights).ToModelProto();
        byte[] data = OnnxExternalData.Externalize(model, ExternalDataFileName(options));
        return (model.ToByteArray(), data);
    }

    /// <summary>The model file's name for <paramref name="options"/>' layout: <c>model.onnx</c> or <c>decoder_model_merged.onnx</c>.</summary>
    public static string ModelFileName(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.LegacyMerged ? LegacyOptimumDecoderLayout.ModelFileName
            : options.Layout == DecoderLayout.GenAi ? GenAiDecoderLayout.ModelFileName
            : OptimumDecoderLayout.ModelFileName;
    }

    /// <summary>
    /// The external-data file's name for <paramref name="options"/>' layout: <c>model.onnx_data</c>,
    /// <c>decoder_model_merged.onnx_data</c> or (genai) <c>model.onnx.data</c>.
    /// </summary>
    public static string ExternalDataFileName(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.LegacyMerged ? LegacyOptimumDecoderLayout.ExternalDataFileName
            : options.Layout == DecoderLayout.GenAi ? GenAiDecoderLayout.ExternalDataFileName
            : OptimumDecoderLayout.ExternalDataFileName;
    }

    /// <summary>The folder of the graph inside the model directory for <paramref name="layout"/>: "" or <c>onnx</c>.</summary>
    public static string GraphFolder(DecoderLayout layout) => layout == DecoderLayout.Hub ? "onnx" : "";

    /// <summary>
    /// Writes the model directory <paramref name="directory"/> (created if missing) and returns the paths written: the
    /// graph (and its external data), <c>config.json</c>, <c>generation_config.json</c> (with <see cref="DecoderLayout.GenAi"/>
    /// <c>genai_config.json</c> instead), then the tokenizer files.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The options are invalid, the weights are too large to embed without external data, or the vocabulary is too small
    /// for the tokenizer.
    /// </exception>
    public static IReadOnlyList<string> Write(DecoderOptions options, string directory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options.Validate();
        // Everything is made before anything is written, so a refusal leaves the directory as it was.
        string? tokenizer = null, tokenizerConfig = null;
        if (options.Tokenizer)
        {
            tokenizer = HuggingFaceTokenizerFiles.Tokenizer(options);
            tokenizerConfig = HuggingFaceTokenizerFiles.TokenizerConfig(options);
        }

        byte[] model, data = [];
        if (options.ExternalData)
        {
            (model, data) = ExternalModelBytes(options);
        }
        else
        {
            model = EmbeddedModelBytes(options);
        }

        string graphDirectory = Path.Combine(directory, GraphFolder(options.Layout));
        Directory.CreateDirectory(graphDirectory);
        var written = new List<string>();
        string modelPath = Path.Combine(graphDirectory, ModelFileName(options));
        string dataPath = Path.Combine(graphDirectory, ExternalDataFileName(options));
        File.WriteAllBytes(modelPath, model);
        written.Add(modelPath);
        if (options.ExternalData)
        {
            File.WriteAllBytes(dataPath, data);
            written.Add(dataPath);
        }
        else
        {
            // A data file left by an earlier external write would be mistaken for this model's.
            File.Delete(dataPath);
        }

        // So would a graph of the other layout: a server takes model.onnx before onnx/model.onnx.
        string otherGraphDirectory = Path.Combine(directory, GraphFolder(options.Layout == DecoderLayout.Hub ? DecoderLayout.Root : DecoderLayout.Hub));
        if (Directory.Exists(otherGraphDirectory))
        {
            File.Delete(Path.Combine(otherGraphDirectory, ModelFileName(options)));
            File.Delete(Path.Combine(otherGraphDirectory, ExternalDataFileName(options)));
        }

        string configPath = Path.Combine(directory, HuggingFaceConfigFiles.ConfigFileName);
        string generationPath = Path.Combine(directory, HuggingFaceConfigFiles.GenerationConfigFileName);
        string genAiConfigPath = Path.Combine(directory, GenAiDecoderLayout.ConfigFileName);
        if (options.Layout == DecoderLayout.GenAi)
        {
            File.WriteAllText(genAiConfigPath, GenAiDecoderLayout.GenAiConfig(options));
            written.Add(genAiConfigPath);
            // onnxruntime-genai's builder writes no config.json; one left by an earlier write would describe another layout.
            File.Delete(configPath);
            File.Delete(generationPath);
        }
        else
        {
            File.WriteAllText(configPath, HuggingFaceConfigFiles.Config(options));
            written.Add(configPath);
            File.WriteAllText(generationPath, HuggingFaceConfigFiles.GenerationConfig(options));
            written.Add(generationPath);
            File.Delete(genAiConfigPath);
        }
        string tokenizerPath = Path.Combine(directory, HuggingFaceTokenizerFiles.TokenizerFileName);
        string tokenizerConfigPath = Path.Combine(directory, HuggingFaceTokenizerFiles.TokenizerConfigFileName);
        if (tokenizer is not null && tokenizerConfig is not null)
        {
            File.WriteAllText(tokenizerPath, tokenizer);
            written.Add(tokenizerPath);
            File.WriteAllText(tokenizerConfigPath, tokenizerConfig);
            written.Add(tokenizerConfigPath);
        }
        else
        {
            // Files of an earlier write would describe another vocabulary.
            File.Delete(tokenizerPath);
            File.Delete(tokenizerConfigPath);
        }

        return written;
    }

    private static OnnxGraphBuilder Graph(DecoderWeights weights) =>
        weights.Options.LegacyMerged ? LegacyMergedDecoderGraph.Build(weights)
        : weights.Options.Layout == DecoderLayout.GenAi ? GenAiDecoderGraph.Build(weights)
        : DecoderGraph.Build(weights);

    private static void CheckEmbeddable(DecoderWeights weights)
    {
        int elementSize = weights.Options.Precision.ElementKind().ElementSize();
        long bytes = weights.Tensors.Append(weights.RopeCos).Append(weights.RopeSin).Sum(t => (long)t.Values.Length * elementSize);
        if (bytes >= MaxEmbeddedBytes)
        {
            throw new ArgumentException(
                $"The weights take {bytes} bytes, more than a protobuf message can hold (2 GB); write them as external data.");
        }
    }
}
