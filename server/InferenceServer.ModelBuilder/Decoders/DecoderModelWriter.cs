using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// Writes a decoder-only language model directory as <c>optimum-cli export onnx --task text-generation-with-past</c>
/// lays it out: <c>model.onnx</c> (<see cref="DecoderGraph"/>; with <see cref="DecoderOptions.ExternalData"/> its
/// weights in <c>model.onnx_data</c>), <c>config.json</c> and <c>generation_config.json</c>; with
/// <see cref="DecoderOptions.LegacyMerged"/>, <c>decoder_model_merged.onnx</c> (<see cref="LegacyMergedDecoderGraph"/>;
/// its weights in <c>decoder_model_merged.onnx_data</c>) instead of the model files, as older Optimum versions wrote it.
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
        return options.LegacyMerged ? LegacyOptimumDecoderLayout.ModelFileName : OptimumDecoderLayout.ModelFileName;
    }

    /// <summary>The external-data file's name for <paramref name="options"/>' layout: <c>model.onnx_data</c> or <c>decoder_model_merged.onnx_data</c>.</summary>
    public static string ExternalDataFileName(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.LegacyMerged ? LegacyOptimumDecoderLayout.ExternalDataFileName : OptimumDecoderLayout.ExternalDataFileName;
    }

    /// <summary>Writes the model directory <paramref name="directory"/> (created if missing) and returns the paths written.</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the weights are too large to embed without external data.</exception>
    public static IReadOnlyList<string> Write(DecoderOptions options, string directory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options.Validate();
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        string modelPath = Path.Combine(directory, ModelFileName(options));
        string dataPath = Path.Combine(directory, ExternalDataFileName(options));
        if (options.ExternalData)
        {
            var (model, data) = ExternalModelBytes(options);
            File.WriteAllBytes(modelPath, model);
            File.WriteAllBytes(dataPath, data);
            written.Add(modelPath);
            written.Add(dataPath);
        }
        else
        {
            File.WriteAllBytes(modelPath, EmbeddedModelBytes(options));
            written.Add(modelPath);
            // A data file left by an earlier external write would be mistaken for this model's.
            File.Delete(dataPath);
        }

        string configPath = Path.Combine(directory, HuggingFaceConfigFiles.ConfigFileName);
        File.WriteAllText(configPath, HuggingFaceConfigFiles.Config(options));
        written.Add(configPath);
        string generationPath = Path.Combine(directory, HuggingFaceConfigFiles.GenerationConfigFileName);
        File.WriteAllText(generationPath, HuggingFaceConfigFiles.GenerationConfig(options));
        written.Add(generationPath);
        return written;
    }

    private static OnnxGraphBuilder Graph(DecoderWeights weights) =>
        weights.Options.LegacyMerged ? LegacyMergedDecoderGraph.Build(weights) : DecoderGraph.Build(weights);

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
