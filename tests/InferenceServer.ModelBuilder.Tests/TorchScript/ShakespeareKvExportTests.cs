using System.Text.Json;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.ModelBuilder.TorchScript;
using InferenceServer.Tests.Infrastructure;
using InferenceServer.Tests.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace InferenceServer.Tests.ModelBuilder.TorchScript;

/// <summary>
/// The trained model of issue 18: <c>shakespeare.pt.zip</c> exported by <c>export-torchscript-gpt</c> into a KV-cache
/// ONNX decoder gives, fed through its cache, the TorchScript model's own logits (TorchSharp) at every position within
/// <see cref="ShakespeareExportFixture.Tolerance"/> (1e-4): token by token over 20 full 32-token windows, and in a ragged
/// left-padded batch prefilled in chunks.
/// </summary>
public sealed class ShakespeareKvExportTests(ShakespeareExportFixture fixture, ITestOutputHelper output) : IClassFixture<ShakespeareExportFixture>
{
    private const float Tolerance = ShakespeareExportFixture.Tolerance;
    private const int Context = TorchScriptRepository.ShakespeareWindow;
    private readonly DecoderSession _session = fixture.Session;

    [Fact]
    public void Twenty_full_windows_fed_token_by_token_through_the_cache_match_torchscript_at_every_position()
    {
        long[] text = ShakespeareExportFixture.Encode(ShakespeareExportFixture.Text);
        long[][] windows = Enumerable.Range(0, 20).Select(w => text[(w * 31)..(w * 31 + Context)]).ToArray();
        float[][][] reference = fixture.Reference(windows);

        float max = 0;
        int compared = 0;
        for (int w = 0; w < windows.Length; w++)
        {
            var cache = KvCache.Empty(fixture.Shape, 1);
            for (int t = 0; t < Context; t++)
            {
                var step = _session.Run([[windows[w][t]]], [DecoderSession.Ones(t + 1)], [[t]], cache);
                max = Math.Max(max, Logits.MaxAbsDiff(reference[w][t], step.At(0, 0)));
                compared++;
                cache = step.Present;
            }

            Assert.Equal(Context, cache.Length);
        }

        output.WriteLine($"max |ONNX (KV cache, token by token) - TorchScript| over {compared} positions of {windows.Length} windows: {max:E2}; logit std {Logits.StdDev(reference[0][0]):F2}");
        Assert.Equal(20 * Context, compared);
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
        // Not vacuous: positions and windows give logits far apart, and the trained model predicts the text.
        Assert.True(Logits.MaxAbsDiff(reference[0][30], reference[0][31]) > 100 * Tolerance);
        Assert.True(Logits.MaxAbsDiff(reference[0][31], reference[1][31]) > 100 * Tolerance);
        double predicted = Enumerable.Range(0, windows.Length).SelectMany(w => Enumerable.Range(0, Context - 1).Select(t => Logits.Top(reference[w][t]).Token == windows[w][t + 1] ? 1.0 : 0.0)).Average();
        output.WriteLine($"next character predicted (greedy) at {predicted:P0} of positions");
        Assert.True(predicted > 0.3, $"the reference predicts only {predicted:P0} of the next characters: not the trained model?");
    }

    [Fact]
    public void Ragged_left_padded_batch_prefilled_in_chunks_matches_torchscript_at_real_positions()
    {
        long[] text = ShakespeareExportFixture.Encode(ShakespeareExportFixture.Text);
        long[] a = text[100..(100 + Context)];
        long[] bWindow = text[400..(400 + Context)];
        long[] b = bWindow[..19];
        float[][][] reference = fixture.Reference([a, bWindow]);

        // Row 0 runs 16 + 4 + 12 = 32 tokens, row 1 3 + 4 + 12 = 19, left-padded by 13 columns (pad id 0, masked) from
        // the prefill on: a prefill, a 4-token chunk on top of the cache, then token by token.
        const int pad = 13;
        var logits = new List<float[]>[] { [], [] };
        var step = _session.Run(
            [a[..16], [.. new long[pad], .. b[..3]]],
            [DecoderSession.Ones(16), [.. new long[pad], .. DecoderSession.Ones(3)]],
            [SmallDecoderFixture.Range(0, 16), [.. new long[pad], .. SmallDecoderFixture.Range(0, 3)]],
            KvCache.Empty(fixture.Shape, 2));
        logits[0].AddRange(Enumerable.Range(0, 16).Select(s => step.At(0, s)));
        logits[1].AddRange(Enumerable.Range(pad, 3).Select(s => step.At(1, s)));
        long[][] mask = [DecoderSession.Ones(16), [.. new long[pad], .. DecoderSession.Ones(3)]];
        int[] done = [16, 3];
        foreach (int chunk in new[] { 4 }.Concat(Enumerable.Repeat(1, 12)))
        {
            mask = [[.. mask[0], .. DecoderSession.Ones(chunk)], [.. mask[1], .. DecoderSession.Ones(chunk)]];
            step = _session.Run(
                [a[done[0]..(done[0] + chunk)], b[done[1]..(done[1] + chunk)]],
                mask,
                [SmallDecoderFixture.Range(done[0], chunk), SmallDecoderFixture.Range(done[1], chunk)],
                step.Present);
            for (int row = 0; row < 2; row++)
            {
                logits[row].AddRange(Enumerable.Range(0, chunk).Select(s => step.At(row, s)));
                done[row] += chunk;
            }
        }

        Assert.Equal([Context, 19], done);
        Assert.Equal(pad + 19, step.Present.Length);
        float maxA = Enumerable.Range(0, Context).Max(t => Logits.MaxAbsDiff(reference[0][t], logits[0][t]));
        float maxB = Enumerable.Range(0, 19).Max(t => Logits.MaxAbsDiff(reference[1][t], logits[1][t]));
        output.WriteLine($"max |ONNX (batch of 2, left-padded, chunked) - TorchScript|: row 0 (32 positions) {maxA:E2}, row 1 (19 positions) {maxB:E2}");
        Assert.True(maxA <= Tolerance, $"row 0: max logit difference {maxA} exceeds {Tolerance}");
        Assert.True(maxB <= Tolerance, $"row 1: max logit difference {maxB} exceeds {Tolerance}");
    }

    [Fact]
    public void Archive_reader_reads_every_parameter_and_buffer_as_torchsharp_does()
    {
        var archive = TorchScriptArchive.Open(ShakespeareExportFixture.ArchivePath);
        var read = archive.Root.NamedTensors().ToDictionary(t => t.Name, t => t.Tensor);
        // Every tensor attribute: the parameters, and plain tensor attributes such as the embedding's positions (not a
        // registered buffer). TorchSharp lists the other attributes (flags, numbers) too, without a name or a tensor.
        var torch = fixture.Module.named_attributes().Where(a => !string.IsNullOrEmpty(a.name) && a.buffer is not null).ToList();
        Assert.Subset(torch.Select(t => t.name).ToHashSet(), fixture.Module.named_parameters().Select(p => p.name).ToHashSet());

        Assert.Equal(torch.Select(t => t.name).Order(), read.Keys.Order());
        long elements = 0;
        foreach (var (name, tensor) in torch)
        {
            var mine = read[name];
            Assert.Equal(tensor.shape, mine.Shape);
            if (tensor.dtype == ScalarType.Int64)
            {
                Assert.Equal(tensor.data<long>().ToArray(), mine.ToInt64s());
            }
            else
            {
                Assert.Equal(ScalarType.Float32, tensor.dtype);
                Assert.Equal(tensor.data<float>().ToArray(), mine.ToFloats());
            }

            elements += mine.ElementCount;
        }

        output.WriteLine($"{torch.Count} tensors, {elements} elements, equal to TorchSharp's");
        Assert.Equal(Enumerable.Range(0, Context).Select(p => (long)p), read["layers.embed.positions"].ToInt64s());
        Assert.Equal(1e-5, archive.FinalFloat("__torch__.torch.nn.modules.normalization.LayerNorm", "eps"), 12);
    }

    [Fact]
    public void Export_declares_the_model_shape_and_a_context_of_32_and_refuses_positions_beyond_it()
    {
        Assert.Equal(
            [Path.Combine(fixture.Directory, "model.onnx"), Path.Combine(fixture.Directory, "config.json"), Path.Combine(fixture.Directory, "generation_config.json")],
            fixture.CommandOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture.Directory, "config.json")));
        var root = config.RootElement;
        Assert.Equal("gpt2", root.GetProperty("model_type").GetString());
        Assert.Equal(2, root.GetProperty("n_layer").GetInt32());
        Assert.Equal(4, root.GetProperty("n_head").GetInt32());
        Assert.Equal(80, root.GetProperty("n_embd").GetInt32());
        Assert.Equal(320, root.GetProperty("n_inner").GetInt32());
        Assert.Equal(65, root.GetProperty("vocab_size").GetInt32());
        Assert.Equal(Context, root.GetProperty("n_positions").GetInt32());
        Assert.Equal(Context, root.GetProperty("max_position_embeddings").GetInt32());
        Assert.Equal("gelu", root.GetProperty("activation_function").GetString());
        Assert.Equal(1e-5, root.GetProperty("layer_norm_epsilon").GetDouble(), 12);
        using var generation = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture.Directory, "generation_config.json")));
        Assert.Equal(Context, generation.RootElement.GetProperty("max_length").GetInt32());

        Assert.Equal(OptimumDecoderLayout.InputNames(2), _session.Session.InputNames);
        Assert.Equal(OptimumDecoderLayout.OutputNames(2), _session.Session.OutputNames);
        var last = _session.Run([[5]], [DecoderSession.Ones(1)], [[Context - 1]], KvCache.Empty(fixture.Shape, 1));
        Assert.Equal(fixture.Shape.Vocab, last.At(0, 0).Length);
        var beyond = Assert.Throws<OnnxRuntimeException>(() => _session.Run([[5]], [DecoderSession.Ones(1)], [[Context]], KvCache.Empty(fixture.Shape, 1)));
        output.WriteLine($"position {Context}: {beyond.Message}");
    }

    [Fact]
    public void Command_refuses_missing_arguments_and_an_archive_of_another_architecture()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, ExportTorchScriptGptCommand.Run(["--out", "x"], TextWriter.Null, stderr));
        Assert.Contains("--torchscript PATH is required", stderr.ToString());

        string dir = Paths.NewTempDirectory("torchscript-gpt-refused");
        stderr = new StringWriter();
        int code = ExportTorchScriptGptCommand.Run(["--torchscript", TorchScriptRepository.File("linrelu.script.dat"), "--out", dir], TextWriter.Null, stderr);
        output.WriteLine(stderr.ToString());
        Assert.Equal(1, code);
        Assert.Contains("Not the character-level GPT this exporter reads", stderr.ToString());
        Assert.False(File.Exists(Path.Combine(dir, "model.onnx")));

        stderr = new StringWriter();
        string notAnArchive = Path.Combine(fixture.Directory, "config.json");
        Assert.Equal(1, ExportTorchScriptGptCommand.Run(["--torchscript", notAnArchive, "--out", dir], TextWriter.Null, stderr));
        Assert.Contains($"'{notAnArchive}' is not a TorchScript archive", stderr.ToString());
    }
}
