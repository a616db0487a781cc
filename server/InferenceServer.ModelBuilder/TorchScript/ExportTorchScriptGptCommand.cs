namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>
/// The <c>export-torchscript-gpt</c> command of the ModelBuilder: exports a character-level GPT saved as TorchScript
/// (<see cref="TorchScriptGpt"/>) to a KV-cache ONNX decoder directory (<see cref="TorchScriptGptExporter"/>), e.g.
/// <c>dotnet run --project server/InferenceServer.ModelBuilder -- export-torchscript-gpt --torchscript ../shared/models/torchscript/shakespeare.pt.zip --out DIR</c>.
/// </summary>
public static class ExportTorchScriptGptCommand
{
    /// <summary>The command's name, the ModelBuilder's first argument.</summary>
    public const string Name = "export-torchscript-gpt";

    /// <summary>The command's usage text.</summary>
    public const string Usage =
        "usage: InferenceServer.ModelBuilder export-torchscript-gpt --torchscript PATH --out DIR\n" +
        "  reads a character-level GPT saved as TorchScript (e.g. shakespeare.pt.zip) and writes it as a KV-cache decoder\n" +
        "  in Optimum's text-generation-with-past ONNX layout (model.onnx, config.json, generation_config.json)\n";

    /// <summary>Parses <paramref name="args"/> (the arguments after the command's name).</summary>
    /// <exception cref="ArgumentException">An argument is unknown or incomplete, or <c>--torchscript</c> or <c>--out</c> is missing.</exception>
    public static (string TorchScript, string OutDir) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? torchScript = null;
        string? outDir = null;
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"'{name}' needs a value.");
            switch (name)
            {
                case "--torchscript":
                    torchScript = Value();
                    break;
                case "--out" or "-o":
                    outDir = Value();
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{name}'.");
            }
        }

        return (torchScript ?? throw new ArgumentException("--torchscript PATH is required."), outDir ?? throw new ArgumentException("--out DIR is required."));
    }

    /// <summary>Runs the command: writes the model and prints one line per file; returns the process exit code (2: bad arguments, 1: an unreadable archive or a file error).</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr) =>
        ModelCommand.Run(Name, Usage, args, stdout, stderr, a =>
        {
            var (torchScript, outDir) = Parse(a);
            return () => TorchScriptGptExporter.Write(torchScript, outDir);
        });
}
