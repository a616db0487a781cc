using System.Diagnostics;
using System.Globalization;
using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Perf;

/// <summary>
/// The decoder of <c>bench kv</c>: a Llama-style model written once by <see cref="DecoderModelWriter"/> as Hugging
/// Face Optimum exports it (<c>model.onnx</c>, <c>config.json</c>, <c>generation_config.json</c>, <c>tokenizer.json</c>,
/// <c>tokenizer_config.json</c>) into the temporary repository's <c>files/</c>, and served under one name per
/// configuration (<see cref="ServedName"/>), each a version directory of symbolic links to those files (never a copy)
/// with a <c>config.yaml</c> beside it that sets only <c>instance_group</c> and <c>parameters.intra_op_num_threads</c>:
/// every generation setting comes from the Hugging Face files and the server's defaults.
/// </summary>
internal static class KvDecoderModel
{
    /// <summary>The shape the issue asks for: 6 layers, d_model 512, 8 heads, 2 KV heads, vocabulary 32,000, FP32, with its tokenizer.</summary>
    public static DecoderOptions Options(BenchOptions o, int maxPositions, DecoderLayout layout = DecoderLayout.Root) => new()
    {
        Layout = layout,
        Layers = o.Layers ?? 6,
        DModel = o.DModel ?? 512,
        Heads = o.Heads ?? 8,
        KvHeads = o.KvHeads ?? 2,
        Vocab = o.Vocab ?? 32_000,
        MaxPositions = maxPositions,
        Precision = DecoderPrecision.Float32,
        Tokenizer = true,
    };

    /// <summary>Parameters of the model: every weight tensor's elements (the rotary tables are not parameters).</summary>
    public static long Parameters(DecoderOptions options)
    {
        long d = options.DModel, kv = options.KvHeads * options.HeadDim, q = options.Heads * options.HeadDim, inter = options.IntermediateSize;
        var layer = d + (d * q) + (2 * d * kv) + (q * d) + d + (3 * d * inter);
        return (2L * options.Vocab * d) + (options.Layers * layer) + d;
    }

    /// <summary>Writes the model into <paramref name="repository"/>'s <c>files/decoder</c>; returns that directory.</summary>
    public static string Write(TempRepository repository, DecoderOptions options)
    {
        var directory = repository.FilePath("decoder");
        var started = Stopwatch.GetTimestamp();
        DecoderModelWriter.Write(options, directory);
        var bytes = Directory.EnumerateFiles(directory).Sum(f => new FileInfo(f).Length);
        BenchSession.Log(string.Create(CultureInfo.InvariantCulture,
            $"wrote the decoder ({Parameters(options) / 1e6:F1} M parameters, {bytes / 1e6:F0} MB) to {directory} in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s"));
        return directory;
    }

    /// <summary>The served name of a configuration: <c>lm_IxT</c>.</summary>
    public static string ServedName(LoopSetting setting) => $"lm_{setting}";

    /// <summary>
    /// Serves <paramref name="directory"/>'s files as model <paramref name="name"/> (default <see cref="ServedName"/>)
    /// version 1 with <paramref name="setting"/>'s instances and threads, and <paramref name="generation"/>'s settings
    /// (YAML key and value, e.g. <c>max_num_batched_tokens</c>, <c>64</c>) under <c>generation:</c> when there are any.
    /// </summary>
    public static void AddServed(TempRepository repository, string directory, LoopSetting setting, string? name = null, IReadOnlyList<(string Key, string Value)>? generation = null)
    {
        var model = Path.Combine(repository.Models, name ?? ServedName(setting));
        var version = Path.Combine(model, "1");
        Directory.CreateDirectory(version);
        foreach (var file in Directory.EnumerateFiles(directory))
        {
            File.CreateSymbolicLink(Path.Combine(version, Path.GetFileName(file)), Path.GetFullPath(file));
        }
        File.WriteAllText(Path.Combine(model, "config.yaml"), string.Create(CultureInfo.InvariantCulture, $"""
            instance_group:
              - count: {setting.Loops}
                kind: KIND_CPU
            parameters:
              intra_op_num_threads: "{setting.Threads}"

            """) + (generation is { Count: > 0 } ? "generation:\n" + string.Concat(generation.Select(g => $"  {g.Key}: {g.Value}\n")) : ""));
    }

    /// <summary>
    /// <paramref name="count"/> prompts of <paramref name="length"/> token ids, deterministic, drawn from the ordinary
    /// tokens (ids from 3: 0 to 2 are the padding, beginning and end of sequence).
    /// </summary>
    public static int[][] Prompts(int count, int length, int vocab, int seed = 18)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(3, vocab)).ToArray()).ToArray();
    }
}
