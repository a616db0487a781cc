// Writes the sample model repository:
//   dotnet run --project server/InferenceServer.ModelBuilder -- [--out DIR]
// DIR defaults to ./models. Prints one line per file written.
// Or, with the first argument `decoder`, one decoder-only language model in Optimum's layout (Decoders/DecoderCommand.cs):
//   dotnet run --project server/InferenceServer.ModelBuilder -- decoder --out DIR [--layers N --d-model N --heads N ...]
// Or, with `export-torchscript-gpt`, a character-level GPT saved as TorchScript exported to the same layout
// (TorchScript/ExportTorchScriptGptCommand.cs):
//   dotnet run --project server/InferenceServer.ModelBuilder -- export-torchscript-gpt --torchscript PATH --out DIR

using InferenceServer.ModelBuilder;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.TorchScript;

if (args.Length > 0 && args[0] == "decoder")
{
    return DecoderCommand.Run(args[1..], Console.Out, Console.Error);
}

if (args.Length > 0 && args[0] == ExportTorchScriptGptCommand.Name)
{
    return ExportTorchScriptGptCommand.Run(args[1..], Console.Out, Console.Error);
}

string outDir = "models";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out" or "-o" when i + 1 < args.Length:
            outDir = args[++i];
            break;
        case "--help" or "-h":
            Console.WriteLine("usage: InferenceServer.ModelBuilder [--out DIR]   (writes the sample model repository; default DIR: models)");
            Console.WriteLine("       InferenceServer.ModelBuilder decoder --out DIR [options]   (writes a decoder-only LM; decoder --help lists the options)");
            Console.WriteLine("       InferenceServer.ModelBuilder export-torchscript-gpt --torchscript PATH --out DIR   (exports a TorchScript character GPT as a KV-cache decoder)");
            return 0;
        default:
            Console.Error.WriteLine($"unknown or incomplete argument '{args[i]}'; usage: InferenceServer.ModelBuilder [--out DIR]");
            return 2;
    }
}

foreach (string path in SampleModels.WriteAll(outDir))
{
    Console.WriteLine(path);
}

return 0;
