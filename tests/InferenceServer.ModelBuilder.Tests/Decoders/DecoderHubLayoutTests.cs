using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The hub layout (<c>--layout hub</c>): the graph and its external data under <c>onnx/</c>, the JSON and tokenizer
/// files at the root, as onnx-community's repositories keep them; ONNX Runtime finds the data beside the graph.
/// </summary>
public sealed class DecoderHubLayoutTests : IDisposable
{
    private static readonly DecoderOptions Options = new() { Layers = 1, DModel = 32, Heads = 4, KvHeads = 2, Vocab = 300, MaxPositions = 64 };

    private readonly string _dir = Directory.CreateTempSubdirectory("decoder-hub-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Hub_layout_puts_the_graph_and_its_data_under_onnx_and_runs_like_the_embedded_model()
    {
        var options = Options with { Layout = DecoderLayout.Hub, ExternalData = true };
        var written = DecoderModelWriter.Write(options, _dir);
        string graph = Path.Combine(_dir, "onnx", "model.onnx");
        Assert.Equal(
            [graph, Path.Combine(_dir, "onnx", "model.onnx_data"), .. new[] { "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json" }.Select(f => Path.Combine(_dir, f))],
            written);
        Assert.Equal(
            ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"],
            Directory.GetFiles(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        long[] tokens = [5, 17, 42, 99, 250];
        using var fromHub = new DecoderSession(options, graph);
        using var embedded = DecoderSession.Create(Options);
        var a = fromHub.RunFull(tokens);
        var b = embedded.RunFull(tokens);
        Assert.All(Enumerable.Range(0, tokens.Length), s => Assert.True(Logits.MaxAbsDiff(a.At(0, s), b.At(0, s)) <= 1e-6f));
    }

    [Fact]
    public void Rewriting_in_the_other_layout_removes_the_old_graph()
    {
        DecoderModelWriter.Write(Options with { ExternalData = true }, _dir);
        Assert.True(File.Exists(Path.Combine(_dir, "model.onnx_data")));
        DecoderModelWriter.Write(Options with { Layout = DecoderLayout.Hub }, _dir);
        Assert.False(File.Exists(Path.Combine(_dir, "model.onnx")));
        Assert.False(File.Exists(Path.Combine(_dir, "model.onnx_data")));
        Assert.True(File.Exists(Path.Combine(_dir, "onnx", "model.onnx")));

        DecoderModelWriter.Write(Options, _dir);
        Assert.True(File.Exists(Path.Combine(_dir, "model.onnx")));
        Assert.False(File.Exists(Path.Combine(_dir, "onnx", "model.onnx")));
    }

    [Fact]
    public void The_command_takes_a_layout()
    {
        Assert.Equal(DecoderLayout.Hub, DecoderCommand.Parse(["--out", "x", "--layout", "hub"]).Options.Layout);
        Assert.Equal(DecoderLayout.Root, DecoderCommand.Parse(["--out", "x", "--layout", "root"]).Options.Layout);
        Assert.Equal(DecoderLayout.Root, DecoderCommand.Parse(["--out", "x"]).Options.Layout);
        Assert.False(DecoderCommand.Parse(["--out", "x", "--no-tokenizer"]).Options.Tokenizer);

        var stderr = new StringWriter();
        Assert.Equal(2, DecoderCommand.Run(["--out", Path.Combine(_dir, "bad"), "--layout", "sideways"], TextWriter.Null, stderr));
        Assert.Contains("'--layout' needs root, hub or genai, not 'sideways'", stderr.ToString());
        Assert.Contains("--layout root|hub", DecoderCommand.Usage);

        using var stdout = new StringWriter();
        Assert.Equal(0, DecoderCommand.Run(["--out", _dir, "--layers", "1", "--d-model", "32", "--vocab", "300", "--layout", "hub"], stdout, TextWriter.Null));
        Assert.Contains(Path.Combine(_dir, "onnx", "model.onnx"), stdout.ToString());
    }
}
