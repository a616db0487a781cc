using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>The ModelBuilder's <c>decoder</c> command and the writer's determinism and validation.</summary>
public sealed class DecoderCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decoder-command-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Decoder_command_parses_every_option()
    {
        var (options, outDir) = DecoderCommand.Parse(
        [
            "--out", "x", "--layers", "3", "--d-model", "96", "--heads", "6", "--kv-heads", "2", "--vocab", "512", "--intermediate", "200",
            "--max-positions", "64", "--rope-theta", "500000", "--rms-norm-eps", "1e-6", "--seed", "7", "--fp16", "--external-data",
            "--bos-id", "3", "--eos-id", "4", "--pad-id", "5",
        ]);
        Assert.Equal("x", outDir);
        Assert.Equal(
            new DecoderOptions
            {
                Layers = 3, DModel = 96, Heads = 6, KvHeads = 2, Vocab = 512, Intermediate = 200, MaxPositions = 64, RopeTheta = 500000,
                RmsNormEps = 1e-6f, Seed = 7, Precision = DecoderPrecision.Float16, ExternalData = true, BosTokenId = 3, EosTokenId = 4, PadTokenId = 5,
            },
            options);
    }

    [Fact]
    public void Decoder_command_writes_the_model_directory_byte_for_byte_deterministically()
    {
        string first = Path.Combine(_dir, "first"), second = Path.Combine(_dir, "second");
        string[] args = ["--layers", "1", "--d-model", "32", "--heads", "4", "--kv-heads", "1", "--vocab", "300", "--external-data"];
        using (var stdout = new StringWriter())
        {
            Assert.Equal(0, DecoderCommand.Run([.. args, "--out", first], stdout, TextWriter.Null));
            Assert.Equal(6, stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        }

        Assert.Equal(0, DecoderCommand.Run([.. args, "--out", second], TextWriter.Null, TextWriter.Null));
        string[] files = ["model.onnx", "model.onnx_data", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];
        Assert.Equal(files.Order(), Directory.GetFiles(first).Select(Path.GetFileName).Order());
        Assert.All(files, f => Assert.Equal(File.ReadAllBytes(Path.Combine(first, f)), File.ReadAllBytes(Path.Combine(second, f))));

        // A different seed gives different weights.
        Assert.Equal(0, DecoderCommand.Run([.. args, "--seed", "19", "--out", second], TextWriter.Null, TextWriter.Null));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(first, "model.onnx_data")), File.ReadAllBytes(Path.Combine(second, "model.onnx_data")));

        // Rewriting with embedded weights removes the stale data file.
        Assert.Equal(0, DecoderCommand.Run([.. args[..^1], "--out", second], TextWriter.Null, TextWriter.Null));
        Assert.False(File.Exists(Path.Combine(second, "model.onnx_data")));
    }

    [Theory]
    [InlineData("--heads", "3")]
    [InlineData("--kv-heads", "3")]
    [InlineData("--layers", "0")]
    [InlineData("--bos-id", "512")]
    [InlineData("--unknown", "1")]
    [InlineData("--vocab", "many")]
    public void Decoder_command_rejects_bad_arguments_with_exit_code_2(string name, string value)
    {
        var stderr = new StringWriter();
        Assert.Equal(2, DecoderCommand.Run(["--out", Path.Combine(_dir, "bad"), name, value], TextWriter.Null, stderr));
        Assert.StartsWith("decoder: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }

    [Fact]
    public void Decoder_command_requires_an_output_directory()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, DecoderCommand.Run(["--layers", "1"], TextWriter.Null, stderr));
        Assert.Contains("--out DIR is required", stderr.ToString(), StringComparison.Ordinal);
    }
}
