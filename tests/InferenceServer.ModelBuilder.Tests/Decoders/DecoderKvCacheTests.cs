using InferenceServer.ModelBuilder.Decoders;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// KV-cache decoding through the written graph equals full recomputation of the same graph: prefill then token by
/// token, ragged left-padded batches, and a sequence joining a running batch. FP32 logits within
/// <see cref="SmallDecoderFixture.Fp32Tolerance"/> (1e-4, against logits whose spread is about 1).
/// </summary>
public sealed class DecoderKvCacheTests(SmallDecoderFixture fixture, ITestOutputHelper output) : IClassFixture<SmallDecoderFixture>
{
    private const float Tolerance = SmallDecoderFixture.Fp32Tolerance;
    private readonly DecoderSession _session = fixture.Session;
    private static DecoderOptions Options => SmallDecoderFixture.Options;

    [Fact]
    public void Prefill_then_decoding_through_present_equals_full_recomputation_at_every_position()
    {
        long[] tokens = SmallDecoderFixture.Prompt("a", 14);
        var full = _session.RunFull(tokens);

        // A prefill of 5, a chunk of 3 on top of a cache (past > 0 and several new tokens), then one token at a time.
        var cache = KvCache.Empty(Options, 1);
        var decoded = new List<float[]>();
        int done = 0;
        foreach (int chunk in new[] { 5, 3, 1, 1, 1, 1, 1, 1 })
        {
            var step = _session.Run([tokens[done..(done + chunk)]], [DecoderSession.Ones(done + chunk)], [SmallDecoderFixture.Range(done, chunk)], cache);
            for (int j = 0; j < chunk; j++)
            {
                decoded.Add(step.At(0, j));
            }

            cache = step.Present;
            done += chunk;
        }

        Assert.Equal(tokens.Length, cache.Length);
        float max = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(full.At(0, s), decoded[s]));
        float maxCache = Enumerable.Range(0, Options.Layers)
            .Max(i => Math.Max(Logits.MaxAbsDiff(full.Present.Keys[i], cache.Keys[i]), Logits.MaxAbsDiff(full.Present.Values[i], cache.Values[i])));
        output.WriteLine($"max |logit difference| over {tokens.Length} positions: {max:E2}; present caches: {maxCache:E2}; logit std {Logits.StdDev(full.At(0, 0)):F2}");
        Assert.True(max <= Tolerance, $"max logit difference {max} exceeds {Tolerance}");
        Assert.True(maxCache <= Tolerance, $"max cache difference {maxCache} exceeds {Tolerance}");
        // Not vacuous: the positions' logits differ from one another far beyond the tolerance.
        Assert.True(Logits.MaxAbsDiff(full.At(0, 12), full.At(0, 13)) > 100 * Tolerance);
    }

    [Fact]
    public void Graph_logits_equal_an_independent_double_precision_llama_forward_pass()
    {
        long[] tokens = SmallDecoderFixture.Prompt("reference", 9);
        long[] positions = SmallDecoderFixture.Range(3, tokens.Length);
        var step = _session.Run([tokens], [DecoderSession.Ones(tokens.Length)], [positions], KvCache.Empty(Options, 1));
        double[][] reference = ReferenceDecoder.Forward(fixture.Weights, tokens, positions);
        float max = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(step.At(0, s), reference[s].Select(v => (float)v).ToArray()));
        output.WriteLine($"max |graph - reference|: {max:E2}");
        Assert.True(max <= Tolerance, $"max difference from the reference {max} exceeds {Tolerance}");
    }

    [Fact]
    public void Rotary_embedding_depends_on_relative_positions_only()
    {
        long[] tokens = SmallDecoderFixture.Prompt("rope", 8);
        var atZero = _session.RunFull(tokens);
        var shifted = _session.Run([tokens], [DecoderSession.Ones(8)], [SmallDecoderFixture.Range(57, 8)], KvCache.Empty(Options, 1));
        var spread = _session.Run([tokens], [DecoderSession.Ones(8)], [[0, 2, 4, 6, 8, 10, 12, 14]], KvCache.Empty(Options, 1));
        float shiftDiff = Enumerable.Range(0, 8).Max(s => Logits.MaxAbsDiff(atZero.At(0, s), shifted.At(0, s)));
        float spreadDiff = Logits.MaxAbsDiff(atZero.At(0, 7), spread.At(0, 7));
        output.WriteLine($"shift by 57: {shiftDiff:E2}; positions doubled: {spreadDiff:E2}");
        Assert.True(shiftDiff <= Tolerance, $"shifting every position changed the logits by {shiftDiff}");
        Assert.True(spreadDiff > 100 * Tolerance, $"changing the distances between positions changed the logits by only {spreadDiff}");
    }

    [Fact]
    public void Ragged_left_padded_batch_equals_each_prompt_alone_in_prefill_and_decoding()
    {
        long[][] prompts = [SmallDecoderFixture.Prompt("r0", 7), SmallDecoderFixture.Prompt("r1", 3), SmallDecoderFixture.Prompt("r2", 5)];
        long[][] next = [SmallDecoderFixture.Prompt("n0", 4), SmallDecoderFixture.Prompt("n1", 4), SmallDecoderFixture.Prompt("n2", 4)];
        int width = prompts.Max(p => p.Length);

        // Left padding: pad tokens with mask 0 (and position 1, as transformers fills masked positions), then the prompt at 0…n−1.
        var ids = prompts.Select(p => Enumerable.Repeat((long)Options.PadTokenId, width - p.Length).Concat(p).ToArray()).ToArray();
        var mask = prompts.Select(p => Enumerable.Repeat(0L, width - p.Length).Concat(DecoderSession.Ones(p.Length)).ToArray()).ToArray();
        var positions = prompts.Select(p => Enumerable.Repeat(1L, width - p.Length).Concat(SmallDecoderFixture.Range(0, p.Length)).ToArray()).ToArray();
        var step = _session.Run(ids, mask, positions, KvCache.Empty(Options, prompts.Length));

        float max = 0;
        int compared = 0;
        for (int r = 0; r < prompts.Length; r++)
        {
            var alone = _session.RunFull(prompts[r]);
            for (int s = 0; s < prompts[r].Length; s++)
            {
                max = Math.Max(max, Logits.MaxAbsDiff(alone.At(0, s), step.At(r, width - prompts[r].Length + s)));
                compared++;
            }
        }

        // Batched decoding on the padded cache: each row's next token at its own next position.
        var cache = step.Present;
        for (int k = 0; k < 4; k++)
        {
            mask = mask.Select(m => m.Append(1L).ToArray()).ToArray();
            step = _session.Run(
                next.Select(n => new[] { n[k] }).ToArray(),
                mask,
                prompts.Select(p => new[] { (long)(p.Length + k) }).ToArray(),
                cache);
            cache = step.Present;
            for (int r = 0; r < prompts.Length; r++)
            {
                var alone = _session.RunFull([.. prompts[r], .. next[r][..(k + 1)]]);
                max = Math.Max(max, Logits.MaxAbsDiff(alone.At(0, prompts[r].Length + k), step.At(r, 0)));
                compared++;
            }
        }

        output.WriteLine($"max |batched - alone| over {compared} logit rows: {max:E2}");
        Assert.True(max <= Tolerance, $"max difference {max} exceeds {Tolerance}");
    }

    [Fact]
    public void Sequence_joining_a_running_batch_with_a_padded_cache_equals_running_alone()
    {
        long[] a = SmallDecoderFixture.Prompt("join a", 6), b = SmallDecoderFixture.Prompt("join b", 3), c = SmallDecoderFixture.Prompt("join c", 4);
        long[] aNext = SmallDecoderFixture.Prompt("join a next", 5), bNext = SmallDecoderFixture.Prompt("join b next", 5), cNext = SmallDecoderFixture.Prompt("join c next", 3);

        // A and B: a left-padded prefill, then two batched decode steps (cache length 8; B's first 3 columns padding).
        var step = _session.Run(
            [a, [0, 0, 0, .. b]],
            [DecoderSession.Ones(6), [0, 0, 0, 1, 1, 1]],
            [SmallDecoderFixture.Range(0, 6), [1, 1, 1, 0, 1, 2]],
            KvCache.Empty(Options, 2));
        long[][] mask = [DecoderSession.Ones(6), [0, 0, 0, 1, 1, 1]];
        for (int k = 0; k < 2; k++)
        {
            mask = mask.Select(m => m.Append(1L).ToArray()).ToArray();
            step = _session.Run([[aNext[k]], [bNext[k]]], mask, [[6 + k], [3 + k]], step.Present);
        }

        // C: prefilled on its own (cache length 4), then joins: its cache left-padded to 8 columns of garbage, masked off.
        var cPrefill = _session.RunFull(c);
        var garbage = new SeededUniform(5, "padding");
        var joined = KvCache.Stack([step.Present.Row(0), step.Present.Row(1), cPrefill.Present], 8, () => (float)(10 * garbage.NextSigned()));
        long[][] joinedMask = [.. mask, [0, 0, 0, 0, 1, 1, 1, 1]];

        float max = 0;
        var cache = joined;
        var firstJoinedStep = default(DecoderStep);
        for (int k = 0; k < 3; k++)
        {
            joinedMask = joinedMask.Select(m => m.Append(1L).ToArray()).ToArray();
            var s = _session.Run([[aNext[2 + k]], [bNext[2 + k]], [cNext[k]]], joinedMask, [[8 + k], [5 + k], [4 + k]], cache);
            firstJoinedStep ??= s;
            cache = s.Present;
            var aloneA = _session.RunFull(a.Concat(aNext[..(3 + k)]).ToArray());
            var aloneB = _session.RunFull(b.Concat(bNext[..(3 + k)]).ToArray());
            var aloneC = _session.RunFull(c.Concat(cNext[..(k + 1)]).ToArray());
            max = Math.Max(max, Logits.MaxAbsDiff(aloneA.At(0, 8 + k), s.At(0, 0)));
            max = Math.Max(max, Logits.MaxAbsDiff(aloneB.At(0, 5 + k), s.At(1, 0)));
            max = Math.Max(max, Logits.MaxAbsDiff(aloneC.At(0, 4 + k), s.At(2, 0)));
        }

        // The mask is what keeps the padding out: with C's padding columns unmasked its logits move far off.
        long[][] unmasked = [.. mask.Select(m => m.Append(1L).ToArray()), DecoderSession.Ones(9)];
        var leaky = _session.Run([[aNext[2]], [bNext[2]], [cNext[0]]], unmasked, [[8], [5], [4]], joined);
        float leak = Logits.MaxAbsDiff(firstJoinedStep!.At(2, 0), leaky.At(2, 0));

        output.WriteLine($"max |joined batch - alone| over 9 logit rows: {max:E2}; with the padding unmasked: {leak:E2}");
        Assert.True(max <= Tolerance, $"max difference {max} exceeds {Tolerance}");
        Assert.True(leak > 100 * Tolerance, $"unmasking the padding changed the joined row by only {leak}");
    }

    [Fact]
    public void Greedy_tokens_from_kv_decoding_equal_full_recomputation_wherever_the_top2_margin_exceeds_the_tolerance()
    {
        long[][] prompts = [SmallDecoderFixture.Prompt("greedy 0", 4), SmallDecoderFixture.Prompt("greedy 1", 7)];
        const int steps = 10;
        int width = 7;
        var step = _session.Run(
            prompts.Select(p => Enumerable.Repeat(0L, width - p.Length).Concat(p).ToArray()).ToArray(),
            prompts.Select(p => Enumerable.Repeat(0L, width - p.Length).Concat(DecoderSession.Ones(p.Length)).ToArray()).ToArray(),
            prompts.Select(p => Enumerable.Repeat(1L, width - p.Length).Concat(SmallDecoderFixture.Range(0, p.Length)).ToArray()).ToArray(),
            KvCache.Empty(Options, 2));
        var mask = prompts.Select(p => Enumerable.Repeat(0L, width - p.Length).Concat(DecoderSession.Ones(p.Length)).ToArray()).ToArray();
        var generated = prompts.Select(p => p.ToList()).ToArray();
        var last = prompts.Select((_, r) => step.At(r, width - 1)).ToArray();

        int checkedPositions = 0, total = 0;
        float smallestMargin = float.MaxValue;
        for (int k = 0; k < steps; k++)
        {
            for (int r = 0; r < prompts.Length; r++)
            {
                var (kvToken, _) = Logits.Top(last[r]);
                var (fullToken, margin) = Logits.Top(_session.RunFull([.. generated[r]]).At(0, generated[r].Count - 1));
                total++;
                smallestMargin = Math.Min(smallestMargin, margin);
                if (margin > Tolerance)
                {
                    checkedPositions++;
                    Assert.Equal(fullToken, kvToken);
                }

                generated[r].Add(kvToken);
            }

            mask = mask.Select(m => m.Append(1L).ToArray()).ToArray();
            step = _session.Run(
                generated.Select(g => new[] { g[^1] }).ToArray(),
                mask,
                generated.Select(g => new[] { (long)(g.Count - 1) }).ToArray(),
                step.Present);
            last = prompts.Select((_, r) => step.At(r, 0)).ToArray();
        }

        output.WriteLine($"greedy: {checkedPositions}/{total} positions with top-2 margin > {Tolerance}; smallest margin {smallestMargin:E2}; " +
                         $"row 0: {string.Join(' ', generated[0])}; row 1: {string.Join(' ', generated[1])}");
        // The prompts meet the margin at every position, so every greedy token was compared (the test is not vacuous).
        Assert.Equal(total, checkedPositions);
    }
}
