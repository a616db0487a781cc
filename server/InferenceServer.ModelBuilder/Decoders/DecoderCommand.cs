using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The <c>decoder</c> command of the ModelBuilder: writes one decoder-only model directory
/// (<see cref="DecoderModelWriter"/>), e.g.
/// <c>dotnet run --project server/InferenceServer.ModelBuilder -- decoder --out DIR --layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 512</c>.
/// </summary>
public static class DecoderCommand
{
    /// <summary>The command's usage text.</summary>
    public const string Usage =
        "usage: InferenceServer.ModelBuilder decoder --out DIR [options]\n" +
        "  writes a Llama-style decoder in Optimum's text-generation-with-past ONNX layout\n" +
        "  (model.onnx [+ model.onnx_data], config.json, generation_config.json, tokenizer.json, tokenizer_config.json)\n" +
        "  with deterministic random weights and a byte-level BPE tokenizer\n" +
        "options (defaults in brackets):\n" +
        "  --layers N            transformer layers [2]\n" +
        "  --d-model N           hidden size [64]\n" +
        "  --heads N             query heads [4]\n" +
        "  --kv-heads N          key/value heads, dividing --heads [2]\n" +
        "  --vocab N             vocabulary size; with the tokenizer at least 256 + the special ids [512]\n" +
        "  --intermediate N      MLP width [2 x d-model]\n" +
        "  --max-positions N     max_position_embeddings [256]\n" +
        "  --rope-theta X        rotary base [10000]\n" +
        "  --rms-norm-eps X      RMS norm epsilon [1e-05]\n" +
        "  --seed N              weight seed [18]\n" +
        "  --fp16                FLOAT16 weights, activations, KV cache and logits [FLOAT]\n" +
        "  --external-data       weights in model.onnx_data beside model.onnx\n" +
        "  --legacy-merged       older Optimum's merged export instead: decoder_model_merged.onnx [+ .onnx_data],\n" +
        "                        inputs use_cache_branch and no position_ids\n" +
        "  --bos-id N, --eos-id N, --pad-id N   special token ids (<s>, </s>, <pad>) [1, 2, 0]\n" +
        "  --layout root|hub|genai\n" +
        "                        root: everything in DIR, as optimum-cli writes it; hub: the graph (and its data)\n" +
        "                        under DIR/onnx/, the JSON and tokenizer files in DIR, as hub repositories keep them;\n" +
        "                        genai: onnxruntime-genai's model-builder layout for the CPU: model.onnx [+ model.onnx.data]\n" +
        "                        with com.microsoft GroupQueryAttention (rotary inside, no position_ids input),\n" +
        "                        genai_config.json and the tokenizer files, no config.json [root]\n" +
        "  --no-tokenizer        write no tokenizer files (for a vocabulary smaller than the byte tokenizer needs)\n";

    /// <summary>Parses <paramref name="args"/> (the arguments after <c>decoder</c>) into options and an output directory.</summary>
    /// <exception cref="ArgumentException">An argument is unknown, incomplete or not a number, or <c>--out</c> is missing.</exception>
    public static (DecoderOptions Options, string OutDir) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var options = new DecoderOptions();
        string? outDir = null;
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"'{name}' needs a value.");
            int Int() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw new ArgumentException($"'{name}' needs an integer, not '{args[i]}'.");
            options = name switch
            {
                "--out" or "-o" => SetOut(options, ref outDir, Value()),
                "--layers" => options with { Layers = Int() },
                "--d-model" => options with { DModel = Int() },
                "--heads" => options with { Heads = Int() },
                "--kv-heads" => options with { KvHeads = Int() },
                "--vocab" => options with { Vocab = Int() },
                "--intermediate" => options with { Intermediate = Int() },
                "--max-positions" => options with { MaxPositions = Int() },
                "--rope-theta" => options with { RopeTheta = Double(name, Value()) },
                "--rms-norm-eps" => options with { RmsNormEps = (float)Double(name, Value()) },
                "--seed" => options with { Seed = ulong.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong s) ? s : throw new ArgumentException($"'{name}' needs a non-negative integer, not '{args[i]}'.") },
                "--fp16" => options with { Precision = DecoderPrecision.Float16 },
                "--external-data" => options with { ExternalData = true },
                "--legacy-merged" => options with { LegacyMerged = true },
                "--bos-id" => options with { BosTokenId = Int() },
                "--eos-id" => options with { EosTokenId = Int() },
                "--pad-id" => options with { PadTokenId = Int() },
                "--layout" => options with { Layout = Layout(name, Value()) },
                "--no-tokenizer" => options with { Tokenizer = false },
                _ => throw new ArgumentException($"unknown argument '{name}'."),
            };
        }

        if (outDir is null)
        {
            throw new ArgumentException("--out DIR is required.");
        }

        options.Validate();
        if (options.Tokenizer)
        {
            DecoderSpecialTokens.CheckVocabulary(options);
        }

        return (options, outDir);
    }

    /// <summary>Runs the command: writes the model and prints one line per file; returns the process exit code (2: bad arguments, 1: a file error).</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr) =>
        ModelCommand.Run("decoder", Usage, args, stdout, stderr, a =>
        {
            var (options, outDir) = Parse(a);
            return () => DecoderModelWriter.Write(options, outDir);
        });

    private static DecoderOptions SetOut(DecoderOptions options, ref string? outDir, string value)
    {
        outDir = value;
        return options;
    }

    private static DecoderLayout Layout(string name, string value) => value switch
    {
        "root" => DecoderLayout.Root,
        "hub" => DecoderLayout.Hub,
        "genai" => DecoderLayout.GenAi,
        _ => throw new ArgumentException($"'{name}' needs root, hub or genai, not '{value}'."),
    };

    private static double Double(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            ? v
            : throw new ArgumentException($"'{name}' needs a number, not '{value}'.");
}
