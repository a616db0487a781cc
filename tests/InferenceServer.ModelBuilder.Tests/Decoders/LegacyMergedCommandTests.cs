using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The <c>decoder</c> command's <c>--legacy-merged</c> option: it writes <c>decoder_model_merged.onnx</c> (with
/// <c>--external-data</c>, its weights in <c>decoder_model_merged.onnx_data</c>) and the same config files as the
/// current layout, and the written model loads from its directory and computes what the embedded one computes.
/// </summary>
public sealed class LegacyMergedCommandTests(LegacyMergedDecoderFixture fixture) : IClassFixture<LegacyMergedDecoderFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decoder-legacy-merged-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Legacy_merged_option_is_parsed_and_listed_in_the_usage()
    {
        var (options, outDir) = DecoderCommand.Parse(["--legacy-merged", "--out", "x"]);
        Assert.Equal("x", outDir);
        Assert.Equal(new DecoderOptions { LegacyMerged = true }, options);
        Assert.False(DecoderCommand.Parse(["--out", "x"]).Options.LegacyMerged);
        Assert.Contains("--legacy-merged", DecoderCommand.Usage, StringComparison.Ordinal);
    }

    [Fact]
    public void Command_writes_the_merged_model_with_external_data_and_the_config_files_of_the_current_layout()
    {
        // The fixture's options (the command's defaults but --max-positions 128, a vocabulary of 256 and so no tokenizer
        // files), so the fixture's model is the reference.
        string merged = Path.Combine(_dir, "merged"), currentLayout = Path.Combine(_dir, "current");
        var stdout = new StringWriter();
        Assert.Equal(0, DecoderCommand.Run(["--legacy-merged", "--external-data", "--max-positions", "128", "--vocab", "256", "--no-tokenizer", "--out", merged], stdout, TextWriter.Null));
        string[] files = ["decoder_model_merged.onnx", "decoder_model_merged.onnx_data", "config.json", "generation_config.json"];
        Assert.Equal(files.Select(f => Path.Combine(merged, f)), stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(files.Order(), Directory.GetFiles(merged).Select(Path.GetFileName).Order());

        Assert.Equal(0, DecoderCommand.Run(["--max-positions", "128", "--vocab", "256", "--no-tokenizer", "--out", currentLayout], TextWriter.Null, TextWriter.Null));
        Assert.All(["config.json", "generation_config.json"], f =>
            Assert.Equal(File.ReadAllBytes(Path.Combine(currentLayout, f)), File.ReadAllBytes(Path.Combine(merged, f))));

        // The weights are in the merged model's own data file.
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(merged, LegacyOptimumDecoderLayout.ModelFileName)));
        var external = model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.Contains(external, t => t.Name == DecoderWeights.EmbedTokens);
        Assert.All(external, t => Assert.Equal(LegacyOptimumDecoderLayout.ExternalDataFileName, t.ExternalData.Single(e => e.Key == "location").Value));

        // It loads from the directory and its first step and a cached step equal the embedded model's.
        long[] tokens = SmallDecoderFixture.Prompt("legacy command", 7);
        using var fromDirectory = new DecoderSession(LegacyMergedDecoderFixture.Options with { ExternalData = true }, Path.Combine(merged, LegacyOptimumDecoderLayout.ModelFileName));
        var options = LegacyMergedDecoderFixture.Options;
        foreach (var session in new[] { fromDirectory, fixture.Session })
        {
            Assert.Equal(LegacyOptimumDecoderLayout.InputNames(options.Layers), session.Session.InputNames);
        }

        var a = fromDirectory.RunMerged([tokens[..6]], [DecoderSession.Ones(6)], KvCache.Empty(options, 1), useCacheBranch: false);
        var b = fixture.Session.RunMerged([tokens[..6]], [DecoderSession.Ones(6)], KvCache.Empty(options, 1), useCacheBranch: false);
        Assert.Equal(b.Logits, a.Logits);
        var aNext = fromDirectory.RunMerged([tokens[6..]], [DecoderSession.Ones(7)], a.Present, useCacheBranch: true);
        var bNext = fixture.Session.RunMerged([tokens[6..]], [DecoderSession.Ones(7)], b.Present, useCacheBranch: true);
        Assert.Equal(bNext.Logits, aNext.Logits);
    }

    [Fact]
    public void Rewriting_the_merged_model_with_embedded_weights_removes_its_stale_data_file()
    {
        Assert.Equal(0, DecoderCommand.Run(["--legacy-merged", "--external-data", "--out", _dir], TextWriter.Null, TextWriter.Null));
        Assert.True(File.Exists(Path.Combine(_dir, LegacyOptimumDecoderLayout.ExternalDataFileName)));
        Assert.Equal(0, DecoderCommand.Run(["--legacy-merged", "--out", _dir], TextWriter.Null, TextWriter.Null));
        Assert.Equal(
            new[] { "config.json", "decoder_model_merged.onnx", "generation_config.json", "tokenizer.json", "tokenizer_config.json" },
            Directory.GetFiles(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(_dir, LegacyOptimumDecoderLayout.ModelFileName)));
        Assert.DoesNotContain(model.Graph.Initializer, t => t.DataLocation == TensorProto.Types.DataLocation.External);
    }
}
