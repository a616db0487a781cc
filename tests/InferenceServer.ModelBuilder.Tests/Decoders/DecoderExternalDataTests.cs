using InferenceServer.ModelBuilder;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.Onnx;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The model directory with its weights in <c>model.onnx_data</c> (ONNX external data): ONNX Runtime loads it from the
/// directory and computes the same logits as the model with embedded weights.
/// </summary>
public sealed class DecoderExternalDataTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decoder-external-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void External_data_model_loads_from_its_directory_and_equals_the_embedded_model()
    {
        // The fixture's vocabulary (256) has no room for the byte tokenizer's special tokens: the graph and JSON files only.
        var options = SmallDecoderFixture.Options with { ExternalData = true, Tokenizer = false };
        var written = DecoderModelWriter.Write(options, _dir);
        string modelPath = Path.Combine(_dir, OptimumDecoderLayout.ModelFileName);
        string dataPath = Path.Combine(_dir, OptimumDecoderLayout.ExternalDataFileName);
        Assert.Equal(
            [modelPath, dataPath, Path.Combine(_dir, HuggingFaceConfigFiles.ConfigFileName), Path.Combine(_dir, HuggingFaceConfigFiles.GenerationConfigFileName)],
            written);

        // Every weight of 1 KiB or more is external, described by location/offset/length, its bytes those of the embedded model.
        var embeddedBytes = DecoderModelWriter.EmbeddedModelBytes(SmallDecoderFixture.Options);
        var embedded = ModelProto.Parser.ParseFrom(embeddedBytes);
        var external = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        var externalTensors = external.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.Equal(embedded.Graph.Initializer.Count(t => t.RawData.Length >= OnnxExternalData.DefaultSizeThreshold), externalTensors.Count);
        Assert.Contains(externalTensors, t => t.Name == DecoderWeights.EmbedTokens);
        foreach (var tensor in externalTensors)
        {
            Assert.True(tensor.RawData.IsEmpty);
            Assert.Equal(["location", "offset", "length"], tensor.ExternalData.Select(e => e.Key));
            Assert.Equal(OptimumDecoderLayout.ExternalDataFileName, tensor.ExternalData[0].Value);
            Assert.Equal(0, long.Parse(tensor.ExternalData[1].Value, System.Globalization.CultureInfo.InvariantCulture) % OnnxExternalData.Alignment);
            Assert.Equal(embedded.Graph.Initializer.Single(t => t.Name == tensor.Name).RawData.ToByteArray(), OnnxExternalData.ReadTensorBytes(tensor, _dir));
        }

        long weightBytes = externalTensors.Sum(t => long.Parse(t.ExternalData[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(new FileInfo(dataPath).Length >= weightBytes);
        // The model file lost the weights' bytes (it gained only the short external_data entries).
        Assert.True(new FileInfo(modelPath).Length < embeddedBytes.Length - weightBytes + 128 * externalTensors.Count, "the model file still holds the weights");

        long[] tokens = SmallDecoderFixture.Prompt("external", 10);
        using var fromDirectory = new DecoderSession(options, modelPath);
        using var inMemory = new DecoderSession(SmallDecoderFixture.Options, embeddedBytes);
        var a = fromDirectory.RunFull(tokens);
        var b = inMemory.RunFull(tokens);
        float max = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(a.At(0, s), b.At(0, s)));
        output.WriteLine($"external data: {externalTensors.Count} tensors, {weightBytes} bytes; max |external - embedded| logits: {max:E2}");
        Assert.True(max <= 1e-6f, $"external-data logits differ from the embedded model's by {max}");
    }

    [Fact]
    public void External_data_model_without_its_data_file_fails_to_load()
    {
        DecoderModelWriter.Write(SmallDecoderFixture.Options with { ExternalData = true, Tokenizer = false }, _dir);
        File.Delete(Path.Combine(_dir, OptimumDecoderLayout.ExternalDataFileName));
        Assert.ThrowsAny<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(() =>
            new Microsoft.ML.OnnxRuntime.InferenceSession(Path.Combine(_dir, OptimumDecoderLayout.ModelFileName)).Dispose());
    }
}
