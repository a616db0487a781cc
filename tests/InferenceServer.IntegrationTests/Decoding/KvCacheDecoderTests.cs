using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Integration.Decoding;

/// <summary>
/// The KV-cache decoder on a generated Llama-style decoder (grouped-query heads, ONNX Runtime): at every step each
/// sequence's logits equal a full recomputation of its tokens through the same graph (empty past), with sequences of
/// different lengths in one run, joining and leaving mid-run, in every cache layout (one left-padded batch region with
/// position_ids, one right-padded batch region for onnxruntime-genai's GroupQueryAttention graphs, or one region per
/// sequence for the older merged export).
/// </summary>
public sealed class KvCacheDecoderTests(ITestOutputHelper output)
{
    /// <summary>How far KV decoding's logits may be from full recomputation (FP32, summation order differs).</summary>
    internal const float Tolerance = 1e-4f;

    private static readonly DecoderOptions Small = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = 256, Tokenizer = false };

    /// <summary>
    /// The graphs the engine drives: the current Optimum layout in FP32 and FP16, the older merged export (no
    /// position_ids), and onnxruntime-genai's layout (GroupQueryAttention, no position_ids, right-padded).
    /// </summary>
    public static TheoryData<string> Layouts => ["fp32", "fp16", "legacy-merged", "genai"];

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Ragged_sequences_joining_and_leaving_mid_run_equal_full_recomputation_at_every_step(string layout)
    {
        var options = layout switch
        {
            "fp16" => Small with { Precision = DecoderPrecision.Float16 },
            "legacy-merged" => Small with { LegacyMerged = true },
            "genai" => Small with { Layout = DecoderLayout.GenAi },
            _ => Small,
        };
        // FP16 rounds every activation; the cached and the recomputed paths round differently.
        var tolerance = layout == "fp16" ? 0.05f : Tolerance;
        using var model = Load(options, out var settings);
        var plan = KvCachePlan.Create(settings);
        // Every layout but the merged export batches its rows in one region (beside a prefill region).
        var batched = layout != "legacy-merged";
        Assert.Equal(layout == "genai", plan.Layout.LengthsFromMask);
        Assert.Equal(batched ? 1 : settings.MaxRunningSequences, plan.Regions);
        Assert.Equal(batched ? settings.MaxRunningSequences : 1, plan.RowsPerRegion);
        Assert.Equal(batched, plan.PrefillTokens > 0);
        // GroupQueryAttention graphs share one buffer between past and present: the plan takes one copy, not two.
        Assert.Equal(layout == "genai" ? 1 : 2, plan.Copies);
        Assert.Equal(plan.Copies * ((long)plan.Regions * plan.RegionTokens + plan.PrefillTokens) * plan.Layout.BytesPerToken, plan.Bytes);
        if (layout == "genai")
        {
            Assert.Equal(0, plan.RegionTokens % plan.MaxSequenceTokens);
            Assert.True(plan.Bytes <= settings.KvCacheBytes);
            // One copy: room for every running row at the longest sequence (the budget here is ample, so the plan
            // takes just that; rows then take it as they grow), plus the prefill region, once.
            Assert.Equal(((long)plan.RowsPerRegion * plan.MaxSequenceTokens + plan.PrefillTokens) * plan.Layout.BytesPerToken, plan.Bytes);
        }
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var random = new Random(5);
        // Prompt lengths and when each joins and leaves: joins shorter and longer than the batch's length, a leave of
        // the longest row (the rectangle shortens) and of a middle one (rows move down).
        (int Prompt, int Join, int Leave)[] plans = [(5, 0, 30), (12, 0, 9), (3, 2, 25), (20, 4, 18), (7, 10, 26), (40, 12, 28)];
        var sequences = plans.Select(p => new TestSequence(Enumerable.Range(0, p.Prompt).Select(_ => random.Next(3, Small.Vocab)).ToList(), p.Prompt + 40)).ToArray();
        var batch = new List<DecoderSequence>();
        var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
        var worst = 0f;
        for (var step = 0; step < 30; step++)
        {
            for (var i = 0; i < plans.Length; i++)
            {
                if (plans[i].Leave == step && batch.Remove(sequences[i]))
                {
                    sequences[i].DecoderState!.Dispose();
                }
                if (plans[i].Join == step)
                {
                    Assert.True(decoder.TryReserve(sequences[i]), $"sequence {i} found no memory");
                    batch.Add(sequences[i]);
                }
            }
            var timings = default(ExecutionTimings);
            decoder.Step(batch, logits, ref timings);
            for (var b = 0; b < batch.Count; b++)
            {
                var row = logits.AsSpan(b * settings.LogitsWidth, settings.LogitsWidth);
                var expected = FullRecomputation(model, plan.Layout, batch[b].Tokens);
                worst = Math.Max(worst, MaxDifference(expected, row));
                Assert.True(MaxDifference(expected, row) <= tolerance, $"step {step}, row {b}: logits differ from full recomputation by {MaxDifference(expected, row)}");
                Assert.Equal(batch[b].Tokens.Count, batch[b].Processed);
                batch[b].Tokens.Add(ArgMax(row));
            }
        }
        output.WriteLine($"{layout}: largest difference from full recomputation: {worst:G3} ({plan.Regions} region(s) of {plan.RowsPerRegion} row(s))");
        Assert.NotEqual(0, decoder.CacheTokens.Used);
        batch.ForEach(s => s.DecoderState!.Dispose());
        Assert.Equal(0, decoder.CacheTokens.Used);
    }

    [Theory]
    [InlineData(new[] { 5, 12, 3 }, 1, false)]
    [InlineData(new[] { 5, 12, 3 }, 0, false)]
    [InlineData(new[] { 5, 12, 3 }, 2, false)]
    [InlineData(new[] { 12, 5 }, 0, false)]
    [InlineData(new[] { 5, 12, 3 }, 1, true)]
    [InlineData(new[] { 5, 12, 3 }, 0, true)]
    [InlineData(new[] { 5, 12, 3 }, 2, true)]
    [InlineData(new[] { 12, 5 }, 0, true)]
    public void A_row_leaving_keeps_the_others_equal_to_full_recomputation(int[] prompts, int leaving, bool genAi)
    {
        using var model = Load(genAi ? Small with { Layout = DecoderLayout.GenAi } : Small, out var settings);
        var plan = KvCachePlan.Create(settings);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var random = new Random(7);
        var batch = prompts.Select(p => (DecoderSequence)new TestSequence(Enumerable.Range(0, p).Select(_ => random.Next(3, Small.Vocab)).ToList(), p + 20)).ToList();
        batch.ForEach(s => Assert.True(decoder.TryReserve(s)));
        var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
        for (var step = 0; step < 4; step++)
        {
            if (step == 2)
            {
                batch[leaving].DecoderState!.Dispose();
                batch.RemoveAt(leaving);
            }
            var timings = default(ExecutionTimings);
            decoder.Step(batch, logits, ref timings);
            for (var b = 0; b < batch.Count; b++)
            {
                var row = logits.AsSpan(b * settings.LogitsWidth, settings.LogitsWidth);
                var difference = MaxDifference(FullRecomputation(model, plan.Layout, batch[b].Tokens), row);
                Assert.True(difference <= Tolerance, $"step {step}, row {b}: logits differ from full recomputation by {difference}");
                batch[b].Tokens.Add(ArgMax(row));
            }
        }
    }

    /// <summary>
    /// A GroupQueryAttention decode step binds one buffer as past and present, and the kernel writes only the new
    /// token's keys and values in place: columns past each row's length keep what they held (a non-shared run would zero
    /// the whole present and copy the past into it), and are never read (they hold NaN, yet the logits stay exact).
    /// </summary>
    [Fact]
    public void A_genai_decode_step_writes_only_the_new_token_into_the_shared_buffer()
    {
        using var model = Load(Small with { Layout = DecoderLayout.GenAi }, out var settings, running: 2);
        var plan = KvCachePlan.Create(settings);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var region = decoder.FirstRegion;
        Assert.True(region.Shared);
        var random = new Random(11);
        var batch = new List<DecoderSequence>
        {
            new TestSequence(Enumerable.Range(0, 6).Select(_ => random.Next(3, Small.Vocab)).ToList(), 40),
            new TestSequence(Enumerable.Range(0, 3).Select(_ => random.Next(3, Small.Vocab)).ToList(), 40),
        };
        batch.ForEach(s => Assert.True(decoder.TryReserve(s)));
        var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
        var timings = default(ExecutionTimings);
        decoder.Step(batch, logits, ref timings);
        batch.ForEach(s => s.Tokens.Add(ArgMax(logits.AsSpan(batch.IndexOf(s) * settings.LogitsWidth, settings.LogitsWidth))));
        var layout = plan.Layout;
        // The row stride grows with the longest row, a step of 16 tokens at a time, not to the longest sequence at once.
        var width = region.Width;
        Assert.Equal(16, width);
        // Poison every column past (row length + 1) of every row, head and layer with NaN.
        for (var at = 0; at < layout.Layers * 2; at++)
        {
            var floats = MemoryMarshal.Cast<byte, float>(region.Memory(at));
            foreach (var row in region.Rows)
            {
                for (var h = 0; h < layout.KvHeads; h++)
                {
                    var start = ((row.Index * layout.KvHeads) + h) * width;
                    floats.Slice((start + row.Length + 1) * layout.HeadSize, (width - row.Length - 1) * layout.HeadSize).Fill(float.NaN);
                    floats.Slice((start + row.Length) * layout.HeadSize, layout.HeadSize).Fill(float.NaN);
                }
            }
        }
        var lengths = region.Rows.Select(r => r.Length).ToArray();
        for (var step = 0; step < 3; step++)
        {
            decoder.Step(batch, logits, ref timings);
            for (var b = 0; b < batch.Count; b++)
            {
                var row = logits.AsSpan(b * settings.LogitsWidth, settings.LogitsWidth);
                var difference = MaxDifference(FullRecomputation(model, layout, batch[b].Tokens), row);
                Assert.True(difference <= Tolerance, $"step {step}, row {b}: logits differ from full recomputation by {difference}");
                batch[b].Tokens.Add(ArgMax(row));
            }
        }
        Assert.Equal(width, region.Width);
        for (var at = 0; at < layout.Layers * 2; at++)
        {
            var floats = MemoryMarshal.Cast<byte, float>(region.Memory(at));
            foreach (var row in region.Rows)
            {
                var before = lengths[row.Index];
                Assert.Equal(before + 3, row.Length);
                for (var h = 0; h < layout.KvHeads; h++)
                {
                    var start = ((row.Index * layout.KvHeads) + h) * width;
                    // The 3 new tokens were written in place (no NaN left where they went) ...
                    foreach (var value in floats.Slice((start + before) * layout.HeadSize, 3 * layout.HeadSize))
                    {
                        Assert.False(float.IsNaN(value), $"cache {at}, row {row.Index}, head {h}: a new token's entry was not written");
                    }
                    // ... and nothing past them was touched.
                    foreach (var value in floats.Slice((start + before + 3) * layout.HeadSize, (width - before - 3) * layout.HeadSize))
                    {
                        Assert.True(float.IsNaN(value), $"cache {at}, row {row.Index}, head {h}: a column past the row's length was rewritten (the buffer was not shared)");
                    }
                }
            }
        }
        batch.ForEach(s => s.DecoderState!.Dispose());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_decode_step_allocates_no_managed_memory_that_grows_with_the_batch_or_the_context(bool genAi)
    {
        using var model = Load(genAi ? Small with { Layout = DecoderLayout.GenAi } : Small, out var settings, running: 16);
        var plan = KvCachePlan.Create(settings);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
        long PerStep(int rows, int steps)
        {
            var batch = Enumerable.Range(0, rows).Select(r => (DecoderSequence)new TestSequence([3 + r, 4, 5], 200)).ToList();
            batch.ForEach(s => Assert.True(decoder.TryReserve(s)));
            var timings = default(ExecutionTimings);
            decoder.Step(batch, logits, ref timings);
            batch.ForEach(s => s.Tokens.Add(7));
            var perStep = new long[steps];
            for (var step = 0; step < steps; step++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                decoder.Step(batch, logits, ref timings);
                perStep[step] = GC.GetAllocatedBytesForCurrentThread() - before;
                batch.ForEach(s => s.Tokens.Add(7));
            }
            batch.ForEach(s => s.DecoderState!.Dispose());
            // The median: what every step allocates. A rare one-off on the thread (the runtime's own lazy work, seen
            // about once in 15 runs of the whole class) moved the mean by a few hundred bytes; growth with rows or
            // context would move every step, so the median still shows it.
            Array.Sort(perStep);
            return perStep[steps / 2];
        }
        var oneRow = PerStep(1, 40);
        var sixteenRows = PerStep(16, 40);
        var longer = PerStep(16, 160);
        output.WriteLine($"{(genAi ? "genai" : "optimum")}: managed bytes per decode step: 1 row {oneRow}, 16 rows {sixteenRows}, 16 rows over 160 steps {longer}");
        // What a step allocates is the engine binding's own per-run objects (one value per input and output), not
        // buffers: it does not grow with rows or with the context.
        Assert.True(sixteenRows <= oneRow + 64, $"16 rows allocate {sixteenRows} bytes per step, 1 row {oneRow}");
        Assert.True(longer <= sixteenRows + 64, $"a longer context allocates {longer} bytes per step, a short one {sixteenRows}");
    }

    [Fact]
    public void A_sequence_that_does_not_fit_beside_the_running_ones_waits_and_a_leaving_one_frees_its_memory_at_once()
    {
        // A batch region of 128 tokens: two prompts of 50 fit (2 x 51), a third does not until one leaves. Memory is
        // taken by what the rows hold, not by what they may reach (prompt + max_tokens 64 each would not fit twice).
        using var model = Load(Small, out var settings, kvCacheBytes: null, running: 4);
        var perToken = settings.KvCache!.BytesPerToken;
        settings = settings with { KvCacheBytes = 2 * ((2 * 64) + 64) * perToken, MaxModelLen = 64 };
        var plan = KvCachePlan.Create(settings);
        Assert.Equal(128, plan.RegionTokens);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        TestSequence Sequence(int first) => new(Enumerable.Range(first, 50).ToList(), 64);
        var (a, b, c) = (Sequence(3), Sequence(60), Sequence(120));
        Assert.True(decoder.TryReserve(a));
        Assert.True(decoder.TryReserve(b));
        Assert.False(decoder.TryReserve(c));
        var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
        var timings = default(ExecutionTimings);
        decoder.Step([a, b], logits, ref timings);
        Assert.True(a.HasLogits && b.HasLogits);
        Assert.Equal((100L, 128L), decoder.CacheTokens);
        a.DecoderState!.Dispose();
        Assert.True(decoder.TryReserve(c));
        Assert.Equal(64, decoder.MaxSequenceTokens);
    }

    internal static IBackendModel Load(DecoderOptions options, out GenerationSettings settings, long? kvCacheBytes = null, int running = 8)
    {
        var directory = Paths.NewTempDirectory("kv-decoder");
        DecoderModelWriter.Write(options, directory);
        var file = options.LegacyMerged ? LegacyOptimumDecoderLayout.ModelFileName
            : options.Layout == DecoderLayout.GenAi ? GenAiDecoderLayout.ModelFileName
            : OptimumDecoderLayout.ModelFileName;
        var model = new OnnxRuntimeBackend().Load(new BackendLoadRequest("decoder", 1, Path.Combine(directory, file), "cpu", false, new Dictionary<string, string>()));
        // As the server decides: genai_config.json beside the graph marks onnxruntime-genai's export.
        var genAi = File.Exists(Path.Combine(directory, GenAiDecoderLayout.ConfigFileName));
        var layout = KvCacheLayout.Recognize(model.Signature.Inputs, model.Signature.Outputs, batchStripped: false, lengthsFromMask: genAi)!;
        settings = new GenerationSettings
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abc" },
            ContextWindow = options.MaxPositions,
            InputName = KvCacheLayout.InputIdsName,
            LogitsName = KvCacheLayout.LogitsName,
            LogitsPerPosition = true,
            LogitsType = layout.CacheType,
            LogitsWidth = options.Vocab,
            MaxRunningSequences = running,
            MaxWaitingSequences = 8,
            KvCache = layout,
            MaxModelLen = options.MaxPositions,
            KvCacheBytes = kvCacheBytes ?? GenerationSettings.DefaultKvCacheBytes,
        };
        return model;
    }

    /// <summary>The next-token logits of <paramref name="tokens"/> computed from scratch: the whole sequence with an empty past.</summary>
    internal static float[] FullRecomputation(IBackendModel model, KvCacheLayout layout, IReadOnlyList<int> tokens)
    {
        var n = tokens.Count;
        using var run = new EngineRun();
        var inputs = new List<Tensor>
        {
            Int64(KvCacheLayout.InputIdsName, tokens.Select(t => (long)t).ToArray(), n),
            Int64(KvCacheLayout.AttentionMaskName, Enumerable.Repeat(1L, n).ToArray(), n),
        };
        if (layout.HasPositionIds)
        {
            inputs.Add(Int64(KvCacheLayout.PositionIdsName, Enumerable.Range(0, n).Select(i => (long)i).ToArray(), n));
        }
        if (layout.HasUseCacheBranch)
        {
            inputs.Add(new Tensor(KvCacheLayout.UseCacheBranchName, DataType.Bool, [1], TensorBuffer.CopyOf([0])));
        }
        foreach (var name in layout.PastKeys.Concat(layout.PastValues))
        {
            inputs.Add(new Tensor(name, layout.CacheType, [1, layout.KvHeads, 0, layout.HeadSize], TensorBuffer.Rent(0)));
        }
        run.Inputs.AddRange(inputs);
        run.AddOutput(KvCacheLayout.LogitsName);
        var timings = default(ExecutionTimings);
        try
        {
            model.Execute(run, ref timings);
        }
        finally
        {
            inputs.ForEach(t => t.Dispose());
        }
        using var logits = run.Outputs[0].TakeResult();
        var width = (int)logits.Shape[^1];
        var last = new float[width];
        LogitsRows.Copy(logits, 0, n, n - 1, last);
        return last;
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            best = values[i] > values[best] ? i : best;
        }
        return best;
    }

    internal static float MaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var worst = 0f;
        for (var i = 0; i < a.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        }
        return worst;
    }

    private static Tensor Int64(string name, long[] values, int n) =>
        new(name, DataType.Int64, [1, n], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan())));

    /// <summary>A sequence the test drives by hand.</summary>
    internal sealed class TestSequence : DecoderSequence
    {
        public TestSequence(List<int> prompt, int maxLength)
        {
            Tokens.AddRange(prompt);
            MaxLength = maxLength;
        }
    }
}
