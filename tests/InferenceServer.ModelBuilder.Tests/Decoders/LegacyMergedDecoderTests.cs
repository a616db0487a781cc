using InferenceServer.ModelBuilder.Decoders;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The legacy merged decoder (<see cref="LegacyMergedDecoderGraph"/>) computes what the current-layout graph of the same
/// weights computes: its first step (<c>use_cache_branch = false</c>, empty past) equals the current graph fed positions
/// 0…n−1 within 1e-5, and decoding through its cache branch equals full recomputation within
/// <see cref="SmallDecoderFixture.Fp32Tolerance"/>. The first-step branch ignores the past; the cache branch counts
/// positions from the past's length.
/// </summary>
public sealed class LegacyMergedDecoderTests(SmallDecoderFixture current, LegacyMergedDecoderFixture legacy, ITestOutputHelper output)
    : IClassFixture<SmallDecoderFixture>, IClassFixture<LegacyMergedDecoderFixture>
{
    /// <summary>The two layouts run the same operators on the same weights: only summation order may differ.</summary>
    private const float SameGraphTolerance = 1e-5f;

    private const float Tolerance = SmallDecoderFixture.Fp32Tolerance;
    private static DecoderOptions Options => LegacyMergedDecoderFixture.Options;

    [Fact]
    public void First_step_without_the_cache_equals_the_current_layout_fed_positions_from_zero()
    {
        long[][] prompts = [SmallDecoderFixture.Prompt("legacy first 0", 9), SmallDecoderFixture.Prompt("legacy first 1", 9)];
        long[][] mask = [DecoderSession.Ones(9), DecoderSession.Ones(9)];
        var merged = legacy.Session.RunMerged(prompts, mask, KvCache.Empty(Options, 2), useCacheBranch: false);
        var reference = current.Session.Run(prompts, mask, [SmallDecoderFixture.Range(0, 9), SmallDecoderFixture.Range(0, 9)], KvCache.Empty(Options, 2));

        Assert.Equal(reference.Present.Shape, merged.Present.Shape);
        float logits = MaxLogitDiff(reference, merged, 2, 9);
        float cache = MaxCacheDiff(reference.Present, merged.Present);
        output.WriteLine($"first step: max |merged - current| logits {logits:E2}, present {cache:E2}");
        Assert.True(logits <= SameGraphTolerance, $"first-step logits differ by {logits}");
        Assert.True(cache <= SameGraphTolerance, $"first-step present tensors differ by {cache}");
        // Not vacuous: the rows and positions differ from one another far beyond the tolerance.
        Assert.True(Logits.MaxAbsDiff(merged.At(0, 8), merged.At(1, 8)) > 100 * Tolerance);
    }

    [Fact]
    public void Decoding_through_the_cache_branch_equals_full_recomputation_at_every_position()
    {
        long[][] sequences = [SmallDecoderFixture.Prompt("legacy decode 0", 14), SmallDecoderFixture.Prompt("legacy decode 1", 14)];
        var full = sequences.Select(current.Session.RunFull).ToArray();

        // A first step of 5 without the cache, a chunk of 3 on top of it (past > 0 and several new tokens), then one at a time.
        var cache = KvCache.Empty(Options, 2);
        var decoded = new List<float[]>[] { [], [] };
        int done = 0;
        foreach (int chunk in new[] { 5, 3, 1, 1, 1, 1, 1, 1 })
        {
            var step = legacy.Session.RunMerged(
                sequences.Select(s => s[done..(done + chunk)]).ToArray(),
                [DecoderSession.Ones(done + chunk), DecoderSession.Ones(done + chunk)],
                cache,
                useCacheBranch: done > 0);
            for (int r = 0; r < 2; r++)
            {
                for (int j = 0; j < chunk; j++)
                {
                    decoded[r].Add(step.At(r, j));
                }
            }

            cache = step.Present;
            done += chunk;
        }

        Assert.Equal(14, cache.Length);
        float max = Enumerable.Range(0, 2).Max(r => Enumerable.Range(0, 14).Max(s => Logits.MaxAbsDiff(full[r].At(0, s), decoded[r][s])));
        float maxCache = Enumerable.Range(0, 2).Max(r => MaxCacheDiff(full[r].Present, cache.Row(r)));
        output.WriteLine($"max |cache-branch decoding - full recomputation| over 2 x 14 positions: logits {max:E2}, present {maxCache:E2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
        Assert.True(maxCache <= Tolerance, $"max cache difference {maxCache} exceeds {Tolerance}");
    }

    [Fact]
    public void First_step_branch_ignores_the_past_inputs_and_the_cache_branch_counts_positions_from_the_past_length()
    {
        long[] tokens = SmallDecoderFixture.Prompt("legacy branches", 6);
        var random = new SeededUniform(7, "legacy garbage past");
        var garbage = KvCache.Stack([KvCache.Empty(Options, 1)], 3, () => (float)random.NextSigned());

        // use_cache_branch = false: a past of 3 columns of garbage (the mask covering the new tokens only) changes nothing.
        var clean = legacy.Session.RunMerged([tokens], [DecoderSession.Ones(6)], KvCache.Empty(Options, 1), useCacheBranch: false);
        var ignored = legacy.Session.RunMerged([tokens], [DecoderSession.Ones(6)], garbage, useCacheBranch: false);
        Assert.Equal(clean.Logits, ignored.Logits);
        Assert.Equal(6, ignored.Present.Length);
        Assert.Equal(clean.Present.Keys, ignored.Present.Keys);

        // use_cache_branch = true on the same past: the branch reads it and puts the tokens at positions 3…8.
        var cached = legacy.Session.RunMerged([tokens], [DecoderSession.Ones(9)], garbage, useCacheBranch: true);
        var reference = current.Session.Run([tokens], [DecoderSession.Ones(9)], [SmallDecoderFixture.Range(3, 6)], garbage);
        Assert.Equal(9, cached.Present.Length);
        float vsReference = MaxLogitDiff(reference, cached, 1, 6);
        float vsFirstStep = Logits.MaxAbsDiff(clean.At(0, 5), cached.At(0, 5));
        output.WriteLine($"cache branch vs current layout at positions 3..8: {vsReference:E2}; vs the first-step branch: {vsFirstStep:E2}");
        Assert.True(vsReference <= SameGraphTolerance, $"the cache branch differs from the current graph at positions 3..8 by {vsReference}");
        Assert.True(vsFirstStep > 100 * Tolerance, $"the flag changed the logits by only {vsFirstStep}");
    }

    [Fact]
    public void Left_padded_rows_count_positions_from_column_0_and_rotary_attention_makes_them_equal_each_prompt_alone()
    {
        long[] longer = SmallDecoderFixture.Prompt("legacy pad 0", 7), shorter = SmallDecoderFixture.Prompt("legacy pad 1", 4);
        long[][] ids = [longer, [0, 0, 0, .. shorter]];
        long[][] mask = [DecoderSession.Ones(7), [0, 0, 0, 1, 1, 1, 1]];
        var merged = legacy.Session.RunMerged(ids, mask, KvCache.Empty(Options, 2), useCacheBranch: false);
        var counted = current.Session.Run(ids, mask, [SmallDecoderFixture.Range(0, 7), SmallDecoderFixture.Range(0, 7)], KvCache.Empty(Options, 2));
        float prefill = MaxLogitDiff(counted, merged, 2, 7);

        // One step through the cache: both rows at position 7, whatever their padding.
        long[][] next = [[11], [12]];
        long[][] nextMask = [.. mask.Select(m => m.Append(1L).ToArray())];
        var mergedStep = legacy.Session.RunMerged(next, nextMask, merged.Present, useCacheBranch: true);
        var countedStep = current.Session.Run(next, nextMask, [[7], [7]], counted.Present);
        float decode = MaxLogitDiff(countedStep, mergedStep, 2, 1);

        // The padded row's positions are shifted by its padding, but rotary scores depend on distances only.
        var alone = current.Session.RunFull([.. shorter, 12]);
        float vsAlone = Math.Max(
            Enumerable.Range(0, 4).Max(s => Logits.MaxAbsDiff(alone.At(0, s), merged.At(1, 3 + s))),
            Logits.MaxAbsDiff(alone.At(0, 4), mergedStep.At(1, 0)));
        output.WriteLine($"merged vs positions counted from column 0: prefill {prefill:E2}, decode {decode:E2}; padded row vs its prompt alone {vsAlone:E2}");
        Assert.True(prefill <= SameGraphTolerance, $"left-padded prefill differs by {prefill}");
        Assert.True(decode <= SameGraphTolerance, $"left-padded decode step differs by {decode}");
        Assert.True(vsAlone <= Tolerance, $"the padded row differs from its prompt alone by {vsAlone}");
    }

    [Fact]
    public void Fp16_merged_model_equals_the_fp16_current_layout_in_both_branches()
    {
        var fp16 = SmallDecoderFixture.Options with { Precision = DecoderPrecision.Float16 };
        using var merged = DecoderSession.Create(fp16 with { LegacyMerged = true });
        using var reference = DecoderSession.Create(fp16);
        Assert.All(merged.Session.InputMetadata.Where(i => i.Key.StartsWith("past_key_values.", StringComparison.Ordinal)),
            i => Assert.Equal(typeof(Microsoft.ML.OnnxRuntime.Float16), i.Value.ElementType));
        Assert.Equal(typeof(Microsoft.ML.OnnxRuntime.Float16), merged.Session.OutputMetadata[OptimumDecoderLayout.Logits].ElementType);

        long[] tokens = SmallDecoderFixture.Prompt("legacy fp16", 8);
        var first = merged.RunMerged([tokens[..6]], [DecoderSession.Ones(6)], KvCache.Empty(fp16, 1), useCacheBranch: false);
        var second = merged.RunMerged([tokens[6..]], [DecoderSession.Ones(8)], first.Present, useCacheBranch: true);
        var full = reference.RunFull(tokens);
        float max = Math.Max(
            Enumerable.Range(0, 6).Max(s => Logits.MaxAbsDiff(full.At(0, s), first.At(0, s))),
            Enumerable.Range(0, 2).Max(s => Logits.MaxAbsDiff(full.At(0, 6 + s), second.At(0, s))));
        output.WriteLine($"fp16 merged vs fp16 current layout: {max:E2}");
        // The FP16 KV tolerance of DecoderPrecisionTests: the cache branch reads a half-precision cache.
        Assert.True(max <= 5e-3f, $"fp16 merged logits differ by {max}");
    }

    private static float MaxLogitDiff(DecoderStep a, DecoderStep b, int batch, int sequence) =>
        Enumerable.Range(0, batch).Max(r => Enumerable.Range(0, sequence).Max(s => Logits.MaxAbsDiff(a.At(r, s), b.At(r, s))));

    private static float MaxCacheDiff(KvCache a, KvCache b) =>
        Enumerable.Range(0, a.Layers).Max(i => Math.Max(Logits.MaxAbsDiff(a.Keys[i], b.Keys[i]), Logits.MaxAbsDiff(a.Values[i], b.Values[i])));
}
