using System.Text.Json;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.TorchScript;
using InferenceServer.Tests.Infrastructure;
using InferenceServer.Tests.ModelBuilder.Decoders;
using TorchSharp;
using static TorchSharp.torch;

namespace InferenceServer.Tests.ModelBuilder.TorchScript;

/// <summary>
/// <c>../shared/models/torchscript/shakespeare.pt.zip</c> exported once per test class by the ModelBuilder's
/// <c>export-torchscript-gpt</c> command into a temporary directory and opened in ONNX Runtime, beside the archive
/// itself loaded in TorchSharp, whose logits are the reference.
/// </summary>
public sealed class ShakespeareExportFixture : IDisposable
{
    /// <summary>Absolute tolerance of the exported graph's logits against TorchScript's (issue 18).</summary>
    public const float Tolerance = 1e-4f;

    /// <summary>Deterministic text in the archive's 65-character vocabulary (Sonnet 18, Hamlet III.i), cut into windows.</summary>
    public const string Text =
        "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n" +
        "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n" +
        "Sometime too hot the eye of heaven shines,\nAnd often is his gold complexion dimm'd;\n" +
        "And every fair from fair sometime declines,\nBy chance or nature's changing course untrimm'd.\n\n" +
        "HAMLET:\nTo be, or not to be: that is the question:\nWhether 'tis nobler in the mind to suffer\n" +
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles,\n" +
        "And by opposing end them? To die: to sleep;\nNo more; and by a sleep to say we end\n" +
        "The heart-ache and the thousand natural shocks\nThat flesh is heir to, 'tis a consummation\n" +
        "Devoutly to be wish'd. To die, to sleep;\nTo sleep: perchance to dream: ay, there's the rub;\n";

    static ShakespeareExportFixture() => InferenceServer.Backends.TorchSharp.OpenMpWaitPolicy.PreferPassive();

    public ShakespeareExportFixture()
    {
        Directory = Paths.NewTempDirectory("shakespeare-kv");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        ExitCode = ExportTorchScriptGptCommand.Run(["--torchscript", ArchivePath, "--out", Directory], stdout, stderr);
        CommandOutput = stdout.ToString() + stderr;
        Assert.True(ExitCode == 0, $"export-torchscript-gpt failed ({ExitCode}): {CommandOutput}");

        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, HuggingFaceConfigFiles.ConfigFileName)));
        var root = config.RootElement;
        int heads = root.GetProperty("n_head").GetInt32();
        Shape = new OptimumDecoderShape(
            root.GetProperty("n_layer").GetInt32(), heads, root.GetProperty("n_embd").GetInt32() / heads,
            root.GetProperty("vocab_size").GetInt32(), DecoderPrecision.Float32);
        Session = new DecoderSession(Shape, Path.Combine(Directory, OptimumDecoderLayout.ModelFileName));
        Module = jit.load(ArchivePath);
        Module.eval();
    }

    public static string ArchivePath => TorchScriptRepository.File("shakespeare.pt.zip");

    /// <summary>The export's directory (model.onnx, config.json, generation_config.json).</summary>
    public string Directory { get; }

    /// <summary>The command's exit code and what it printed.</summary>
    public int ExitCode { get; }

    public string CommandOutput { get; }

    /// <summary>The interface's shapes, as config.json gives them.</summary>
    public OptimumDecoderShape Shape { get; }

    internal DecoderSession Session { get; }

    /// <summary>The archive in TorchSharp.</summary>
    public jit.ScriptModule Module { get; }

    /// <summary><paramref name="text"/>'s characters as the archive's token ids.</summary>
    public static long[] Encode(string text) => text.Select(c =>
    {
        int id = TorchScriptRepository.ShakespeareVocabulary.IndexOf(c);
        Assert.True(id >= 0, $"'{c}' is not in the vocabulary");
        return (long)id;
    }).ToArray();

    /// <summary>
    /// The archive's logits for <paramref name="windows"/> (each exactly 32 ids) in one TorchScript call:
    /// <c>[window][position][vocab]</c>.
    /// </summary>
    public float[][][] Reference(long[][] windows)
    {
        int context = TorchScriptRepository.ShakespeareWindow;
        Assert.All(windows, w => Assert.Equal(context, w.Length));
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var output = (Tensor)Module.forward(tensor(windows.SelectMany(w => w).ToArray(), [windows.Length, context]));
        Assert.Equal([windows.Length, context, Shape.Vocab], output.shape);
        float[] flat = output.data<float>().ToArray();
        return Enumerable.Range(0, windows.Length)
            .Select(w => Enumerable.Range(0, context).Select(p => flat.AsSpan((w * context + p) * Shape.Vocab, Shape.Vocab).ToArray()).ToArray())
            .ToArray();
    }

    public void Dispose()
    {
        Session.Dispose();
        Module.Dispose();
    }
}
