using System.Text.Json;
using InferenceServer.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The decoder in onnxruntime-genai's model-builder layout (<see cref="DecoderLayout.GenAi"/>, GroupQueryAttention with
/// rotary inside) run directly in ONNX Runtime: KV decoding equals full recomputation, its logits equal the Optimum
/// layout's graph of the same weights, and right-padded batches of ragged rows equal each row alone.
/// </summary>
public sealed class GenAiDecoderTests(ITestOutputHelper output) : IDisposable
{
    private const float Tolerance = SmallDecoderFixture.Fp32Tolerance;

    internal static readonly DecoderOptions Options = new()
    {
        Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 512, MaxPositions = 128, Layout = DecoderLayout.GenAi,
    };

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "genai-decoder-" + Guid.NewGuid().ToString("N"));
    private readonly GenAiSession _session = new(Options, DecoderModelWriter.EmbeddedModelBytes(Options));

    [Fact]
    public void Prefill_then_greedy_decoding_through_present_equals_full_recomputation_at_every_step()
    {
        var tokens = SmallDecoderFixture.Prompt("genai", 10).ToList();
        var step = _session.Run([tokens.ToArray()], [DecoderSession.Ones(tokens.Count)], KvCache.Empty(Options, 1));
        float max = 0;
        for (int n = 0; n < 10; n++)
        {
            float[] last = step.At(0, step.Sequence - 1);
            var full = _session.Run([tokens.ToArray()], [DecoderSession.Ones(tokens.Count)], KvCache.Empty(Options, 1));
            max = Math.Max(max, Logits.MaxAbsDiff(full.At(0, tokens.Count - 1), last));
            long next = Logits.Top(last).Token;
            tokens.Add(next);
            var cache = step.Present;
            Assert.Equal(tokens.Count - 1, cache.Length);
            step = _session.Run([[next]], [DecoderSession.Ones(tokens.Count)], cache);
        }

        output.WriteLine($"max |KV decoding - full recomputation| over 10 steps after a 10-token prefill: {max:E2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
    }

    /// <summary>Several new tokens on top of a cache (GroupQueryAttention's "subsequent prompt": past > 0 and sequence > 1).</summary>
    [Fact]
    public void Chunks_of_several_tokens_on_top_of_a_cache_equal_full_recomputation()
    {
        long[] tokens = SmallDecoderFixture.Prompt("chunks", 14);
        var full = _session.Run([tokens], [DecoderSession.Ones(tokens.Length)], KvCache.Empty(Options, 1));
        var cache = KvCache.Empty(Options, 1);
        float max = 0;
        int done = 0;
        foreach (int chunk in new[] { 5, 3, 1, 4, 1 })
        {
            var step = _session.Run([tokens[done..(done + chunk)]], [DecoderSession.Ones(done + chunk)], cache);
            for (int j = 0; j < chunk; j++)
            {
                max = Math.Max(max, Logits.MaxAbsDiff(full.At(0, done + j), step.At(0, j)));
            }

            cache = step.Present;
            done += chunk;
        }

        output.WriteLine($"max |chunked (5, 3, 1, 4, 1) - full recomputation| over {tokens.Length} positions: {max:E2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
    }

    [Fact]
    public void Logits_equal_the_optimum_layout_graph_of_the_same_weights()
    {
        long[] tokens = SmallDecoderFixture.Prompt("same weights", 12);
        using var optimum = DecoderSession.Create(Options with { Layout = DecoderLayout.Root });
        var reference = optimum.RunFull(tokens);
        var step = _session.Run([tokens], [DecoderSession.Ones(tokens.Length)], KvCache.Empty(Options, 1));
        float max = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(reference.At(0, s), step.At(0, s)));
        float maxCache = Enumerable.Range(0, Options.Layers)
            .Max(i => Math.Max(Logits.MaxAbsDiff(reference.Present.Keys[i], step.Present.Keys[i]), Logits.MaxAbsDiff(reference.Present.Values[i], step.Present.Values[i])));
        output.WriteLine($"max |genai - optimum layout| logits over {tokens.Length} positions: {max:E2}; present caches: {maxCache:E2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
        Assert.True(maxCache <= Tolerance, $"max cache difference {maxCache} exceeds {Tolerance}");
    }

    /// <summary>
    /// GroupQueryAttention on the CPU reads only each row's count of mask ones (<c>seqlens_k</c>): a row's real tokens
    /// come first and the padding after them (right padding); each decoding step writes a row's new key and value at
    /// column <c>seqlens_k</c>, over its padding, and widens the cache by one.
    /// </summary>
    [Fact]
    public void Right_padded_ragged_batch_equals_each_row_alone_in_prefill_and_decoding()
    {
        long[][] prompts = [SmallDecoderFixture.Prompt("row a", 10), SmallDecoderFixture.Prompt("row b", 6)];
        int width = prompts.Max(p => p.Length);
        long[][] ids = prompts.Select(p => p.Concat(Enumerable.Repeat((long)Options.PadTokenId, width - p.Length)).ToArray()).ToArray();
        long[][] mask = prompts.Select(p => Enumerable.Repeat(1L, p.Length).Concat(Enumerable.Repeat(0L, width - p.Length)).ToArray()).ToArray();
        var step = _session.Run(ids, mask, KvCache.Empty(Options, 2));
        var rows = prompts.Select(p => p.ToList()).ToArray();
        var lastLogits = rows.Select((r, b) => step.At(b, r.Count - 1)).ToArray();
        float max = 0;
        for (int n = 0; n < 6; n++)
        {
            for (int b = 0; b < 2; b++)
            {
                var alone = _session.Run([rows[b].ToArray()], [DecoderSession.Ones(rows[b].Count)], KvCache.Empty(Options, 1));
                max = Math.Max(max, Logits.MaxAbsDiff(alone.At(0, rows[b].Count - 1), lastLogits[b]));
            }

            long[] next = lastLogits.Select(l => (long)Logits.Top(l).Token).ToArray();
            var cache = step.Present;
            int total = cache.Length + 1;
            for (int b = 0; b < 2; b++)
            {
                rows[b].Add(next[b]);
            }

            mask = rows.Select(r => Enumerable.Repeat(1L, r.Count).Concat(Enumerable.Repeat(0L, total - r.Count)).ToArray()).ToArray();
            step = _session.Run(next.Select(t => new[] { t }).ToArray(), mask, cache);
            lastLogits = [step.At(0, 0), step.At(1, 0)];
        }

        output.WriteLine($"max |right-padded batch - row alone| over prefill and 6 decoding steps: {max:E2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
    }

    /// <summary>
    /// Left padding is not GroupQueryAttention's contract: a left-padded row's <c>seqlens_k</c> still counts its ones, so
    /// the kernel attends to the leading pad columns and never to the last real tokens; the row's logits come out wrong.
    /// </summary>
    [Fact]
    public void Left_padding_is_not_the_contract_a_left_padded_row_gets_other_logits_than_alone()
    {
        long[] longRow = SmallDecoderFixture.Prompt("row a", 10), shortRow = SmallDecoderFixture.Prompt("row b", 6);
        long[] padded = Enumerable.Repeat((long)Options.PadTokenId, 4).Concat(shortRow).ToArray();
        long[] mask = Enumerable.Repeat(0L, 4).Concat(Enumerable.Repeat(1L, 6)).ToArray();
        var step = _session.Run([longRow, padded], [DecoderSession.Ones(10), mask], KvCache.Empty(Options, 2));
        var alone = _session.Run([shortRow], [DecoderSession.Ones(6)], KvCache.Empty(Options, 1));
        float diff = Logits.MaxAbsDiff(alone.At(0, 5), step.At(1, 9));
        float longDiff = Logits.MaxAbsDiff(_session.Run([longRow], [DecoderSession.Ones(10)], KvCache.Empty(Options, 1)).At(0, 9), step.At(0, 9));
        output.WriteLine($"left-padded row's last logits vs the row alone: max |diff| {diff:E2}; the unpadded row beside it: {longDiff:E2}");
        Assert.True(diff > 0.1f, $"left padding unexpectedly matched (max |diff| {diff})");
        Assert.True(longDiff <= Tolerance, $"the unpadded row differs by {longDiff}");
    }

    /// <summary>FP16 weights, caches and logits (GroupQueryAttention in FLOAT16 on the CPU): KV decoding against full recomputation, and against FP32.</summary>
    [Fact]
    public void Fp16_model_decodes_through_its_cache_as_full_recomputation_and_near_fp32()
    {
        var fp16Options = Options with { Precision = DecoderPrecision.Float16 };
        using var fp16 = new GenAiSession(fp16Options, DecoderModelWriter.EmbeddedModelBytes(fp16Options));
        long[] tokens = SmallDecoderFixture.Prompt("half", 12);
        var full = fp16.Run([tokens], [DecoderSession.Ones(tokens.Length)], KvCache.Empty(fp16Options, 1));
        var fp32 = _session.Run([tokens], [DecoderSession.Ones(tokens.Length)], KvCache.Empty(Options, 1));
        var step = fp16.Run([tokens[..6]], [DecoderSession.Ones(6)], KvCache.Empty(fp16Options, 1));
        float kv = 0;
        for (int n = 6; n < tokens.Length; n++)
        {
            step = fp16.Run([[tokens[n]]], [DecoderSession.Ones(n + 1)], step.Present);
            kv = Math.Max(kv, Logits.MaxAbsDiff(full.At(0, n), step.At(0, 0)));
        }

        float vsFp32 = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(fp32.At(0, s), full.At(0, s)));
        output.WriteLine($"FP16: max |KV decoding - full recomputation| {kv:E2}; max |FP16 - FP32| {vsFp32:E2}");
        Assert.True(kv <= 5e-3f, $"FP16 KV decoding differs from its full recomputation by {kv}");
        Assert.True(vsFp32 <= 2e-2f, $"FP16 logits differ from FP32 by {vsFp32}");
    }

    [Fact]
    public void Writes_model_genai_config_and_tokenizer_files_and_no_config_json()
    {
        string[] written = DecoderModelWriter.Write(Options, _dir).Select(p => Path.GetFileName(p)!).ToArray();
        Assert.Equal(["model.onnx", "genai_config.json", "tokenizer.json", "tokenizer_config.json"], written);
        Assert.False(File.Exists(Path.Combine(_dir, "config.json")));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "genai_config.json")));
        var model = config.RootElement.GetProperty("model");
        var decoder = model.GetProperty("decoder");
        Assert.Equal("llama", model.GetProperty("type").GetString());
        Assert.Equal(Options.Vocab, model.GetProperty("vocab_size").GetInt32());
        Assert.Equal(Options.HeadDim, decoder.GetProperty("head_size").GetInt32());
        Assert.Equal(Options.KvHeads, decoder.GetProperty("num_key_value_heads").GetInt32());
        Assert.Equal("past_key_values.%d.key", decoder.GetProperty("inputs").GetProperty("past_key_names").GetString());
        Assert.Equal("present.%d.value", decoder.GetProperty("outputs").GetProperty("present_value_names").GetString());

        using var session = new InferenceSession(Path.Combine(_dir, "model.onnx"));
        Assert.Equal(["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"], session.InputNames);
        Assert.Equal(GenAiDecoderLayout.OutputNames(Options.Layers), session.OutputNames);

        string[] external = DecoderModelWriter.Write(Options with { ExternalData = true }, _dir).Select(p => Path.GetFileName(p)!).ToArray();
        Assert.Equal(["model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "tokenizer_config.json"], external);
    }

    [Fact]
    public void Command_parses_the_genai_layout_and_refuses_it_with_legacy_merged()
    {
        Assert.Equal(DecoderLayout.GenAi, DecoderCommand.Parse(["--out", "x", "--layout", "genai"]).Options.Layout);
        Assert.Throws<ArgumentException>(() => DecoderCommand.Parse(["--out", "x", "--layout", "genai", "--legacy-merged"]));
    }

    public void Dispose()
    {
        _session.Dispose();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}

/// <summary>An ONNX Runtime session over a genai-layout decoder (no <c>position_ids</c>), fed and read as floats whatever its precision.</summary>
internal sealed class GenAiSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OptimumDecoderShape _shape;

    public GenAiSession(DecoderOptions options, byte[] model)
    {
        _shape = options.Shape;
        _session = new InferenceSession(model, new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, IntraOpNumThreads = 1 });
    }

    /// <summary>One call: <paramref name="mask"/> rows are <c>past.Length + ids</c> long.</summary>
    public DecoderStep Run(long[][] ids, long[][] mask, KvCache past)
    {
        int batch = ids.Length, sequence = ids[0].Length;
        Assert.All(mask, r => Assert.Equal(past.Length + sequence, r.Length));
        var names = new List<string>();
        var values = new List<OrtValue>();
        try
        {
            names.Add(GenAiDecoderLayout.InputIds);
            values.Add(OrtValue.CreateTensorValueFromMemory(ids.SelectMany(r => r).ToArray(), [batch, sequence]));
            names.Add(GenAiDecoderLayout.AttentionMask);
            values.Add(OrtValue.CreateTensorValueFromMemory(mask.SelectMany(r => r).ToArray(), [batch, mask[0].Length]));
            for (int i = 0; i < _shape.Layers; i++)
            {
                names.Add(GenAiDecoderLayout.PastKey(i));
                values.Add(Tensor(past.Keys[i], past.Shape));
                names.Add(GenAiDecoderLayout.PastValue(i));
                values.Add(Tensor(past.Values[i], past.Shape));
            }

            using var results = _session.Run(new RunOptions(), names, values, GenAiDecoderLayout.OutputNames(_shape.Layers).ToArray());
            Assert.Equal([batch, sequence, _shape.Vocab], results[0].GetTensorTypeAndShape().Shape);
            var presentShape = results[1].GetTensorTypeAndShape().Shape;
            var present = new KvCache(_shape.Layers, batch, _shape.KvHeads, checked((int)presentShape[2]), _shape.HeadDim);
            Assert.Equal(present.Shape, presentShape);
            for (int i = 0; i < _shape.Layers; i++)
            {
                Read(results[1 + 2 * i]).CopyTo(present.Keys[i], 0);
                Read(results[2 + 2 * i]).CopyTo(present.Values[i], 0);
            }

            return new DecoderStep(Read(results[0]), batch, sequence, _shape.Vocab, present);
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    public void Dispose() => _session.Dispose();

    private OrtValue Tensor(float[] data, long[] shape)
    {
        if (_shape.Precision == DecoderPrecision.Float32)
        {
            return OrtValue.CreateTensorValueFromMemory((float[])data.Clone(), shape);
        }

        return OrtValue.CreateTensorValueFromMemory(data.Select(v => new Float16(BitConverter.HalfToUInt16Bits((Half)v))).ToArray(), shape);
    }

    private float[] Read(OrtValue value)
    {
        if (_shape.Precision == DecoderPrecision.Float32)
        {
            Assert.Equal(TensorElementType.Float, value.GetTensorTypeAndShape().ElementDataType);
            return value.GetTensorDataAsSpan<float>().ToArray();
        }

        Assert.Equal(TensorElementType.Float16, value.GetTensorTypeAndShape().ElementDataType);
        return value.GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)BitConverter.UInt16BitsToHalf(h.value)).ToArray();
    }
}
