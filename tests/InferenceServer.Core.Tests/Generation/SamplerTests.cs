using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Generation;

public sealed class SamplerTests
{
    private static float[] RandomLogits(int count, int seed, float scale = 4f)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1) * scale).ToArray();
    }

    private static double[] Softmax(float[] logits, double temperature)
    {
        var max = logits.Max();
        var exp = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        var sum = exp.Sum();
        return exp.Select(e => e / sum).ToArray();
    }

    private static double[] Frequencies(SamplingParameters parameters, float[] logits, int draws)
    {
        var sampler = new Sampler(parameters);
        var scratch = new float[logits.Length];
        var counts = new double[logits.Length];
        for (var i = 0; i < draws; i++)
        {
            counts[sampler.Sample(logits, scratch)]++;
        }
        return counts.Select(c => c / draws).ToArray();
    }

    [Fact]
    public void Greedy_is_argmax_and_the_lowest_index_wins_ties()
    {
        var logits = RandomLogits(1000, 1);
        var expected = Array.IndexOf(logits, logits.Max());
        var sampler = new Sampler(SamplingParameters.Greedy);
        Assert.Equal(expected, sampler.Sample(logits, new float[1000]));
        Assert.Equal(expected, Sampler.ArgMax(logits));
        Assert.Equal(1, Sampler.ArgMax([1f, 3f, 3f, 2f]));
        Assert.Equal(2, Sampler.ArgMax([float.NaN, 1f, 3f]));
        // Long enough for the vectorized search: ties, NaN and signed zeros still follow the rule.
        var wide = new float[1000];
        Array.Fill(wide, -1f);
        wide[700] = 5f;
        wide[300] = 5f;
        Assert.Equal(300, Sampler.ArgMax(wide));
        wide[100] = float.NaN;
        Assert.Equal(300, Sampler.ArgMax(wide));
        Array.Fill(wide, -1f);
        wide[400] = -0f;
        wide[600] = 0f;
        Assert.Equal(400, Sampler.ArgMax(wide));
    }

    [Fact]
    public void The_same_seed_draws_the_same_tokens()
    {
        var logits = RandomLogits(50, 2, scale: 1f);
        var parameters = new SamplingParameters { Temperature = 1f, Seed = 42 };
        int[] Draw(SamplingParameters p)
        {
            var sampler = new Sampler(p);
            var scratch = new float[logits.Length];
            return Enumerable.Range(0, 200).Select(_ => sampler.Sample(logits, scratch)).ToArray();
        }
        var first = Draw(parameters);
        Assert.Equal(first, Draw(parameters));
        Assert.NotEqual(first, Draw(parameters with { Seed = 43 }));
        Assert.True(first.Distinct().Count() > 10, "a flat distribution must not collapse to a few tokens");
    }

    [Fact]
    public void The_generator_is_xoshiro256_starstar_seeded_by_splitmix64()
    {
        // Pinned outputs: a seed must give the same text on every platform and release.
        var random = new Xoshiro256(42);
        Assert.Equal(0x15780b2e0c2ec716UL, random.NextUInt64());
        Assert.Equal(0x6104d9866d113a7eUL, random.NextUInt64());
        Assert.Equal(0xae17533239e499a1UL, random.NextUInt64());
    }

    [Theory]
    [InlineData(0.3f)]
    [InlineData(1f)]
    [InlineData(2f)]
    public void Top_k_of_one_and_a_tiny_top_p_are_greedy(float temperature)
    {
        var logits = RandomLogits(5000, 3);
        var best = Sampler.ArgMax(logits);
        var scratch = new float[logits.Length];
        foreach (var parameters in new[]
        {
            new SamplingParameters { Temperature = temperature, TopK = 1, Seed = 1 },
            new SamplingParameters { Temperature = temperature, TopP = 1e-6f, Seed = 2 },
            new SamplingParameters { Temperature = temperature, TopK = 40, TopP = 1e-6f, Seed = 3 },
        })
        {
            var sampler = new Sampler(parameters);
            for (var i = 0; i < 50; i++)
            {
                Assert.Equal(best, sampler.Sample(logits, scratch));
            }
        }
    }

    [Fact]
    public void Draws_follow_the_softmax()
    {
        float[] logits = [1f, 2f, 3f];
        var expected = Softmax(logits, 1.0);
        var observed = Frequencies(new SamplingParameters { Temperature = 1f, Seed = 5 }, logits, 20000);
        for (var i = 0; i < 3; i++)
        {
            Assert.InRange(observed[i], expected[i] - 0.015, expected[i] + 0.015);
        }
    }

    [Fact]
    public void Temperature_sharpens_or_flattens_the_distribution()
    {
        float[] logits = [0f, 1f, 2f];
        var cold = Frequencies(new SamplingParameters { Temperature = 0.5f, Seed = 6 }, logits, 20000);
        var hot = Frequencies(new SamplingParameters { Temperature = 1.8f, Seed = 7 }, logits, 20000);
        Assert.InRange(cold[2], Softmax(logits, 0.5)[2] - 0.015, Softmax(logits, 0.5)[2] + 0.015);
        Assert.InRange(hot[2], Softmax(logits, 1.8)[2] - 0.015, Softmax(logits, 1.8)[2] + 0.015);
        Assert.True(cold[2] > hot[2] + 0.2);
        Assert.True(cold[0] < hot[0]);
    }

    [Fact]
    public void Top_k_and_top_p_renormalize_over_what_they_keep()
    {
        float[] logits = [1f, 2f, 3f, 0f];
        var p = Softmax(logits, 1.0); // 0.237, 0.087, 0.644 ... ordered 2, 1, 0, 3
        // Top-2 keeps tokens 2 and 1.
        var topK = Frequencies(new SamplingParameters { TopK = 2, Seed = 8 }, logits, 20000);
        Assert.Equal(0, topK[0]);
        Assert.Equal(0, topK[3]);
        Assert.InRange(topK[2], p[2] / (p[2] + p[1]) - 0.015, p[2] / (p[2] + p[1]) + 0.015);
        // p[2] < 0.8 <= p[2] + p[1]: the nucleus is the same two tokens, on both the full-vocabulary and the top-k path.
        foreach (var parameters in new[] { new SamplingParameters { TopP = 0.8f, Seed = 9 }, new SamplingParameters { TopK = 3, TopP = 0.8f, Seed = 10 } })
        {
            var topP = Frequencies(parameters, logits, 20000);
            Assert.Equal(0, topP[0]);
            Assert.Equal(0, topP[3]);
            Assert.InRange(topP[2], p[2] / (p[2] + p[1]) - 0.015, p[2] / (p[2] + p[1]) + 0.015);
        }
    }

    [Fact]
    public void The_nucleus_is_exact_on_a_150k_vocabulary()
    {
        // Token 7 has probability 0.5, token 99999 0.3, and 149998 others share 0.2 evenly.
        const int vocabulary = 150_000;
        var logits = new float[vocabulary];
        var small = MathF.Log(0.2f / (vocabulary - 2));
        Array.Fill(logits, small);
        logits[7] = MathF.Log(0.5f);
        logits[99999] = MathF.Log(0.3f);
        var scratch = new float[vocabulary];

        var sampler = new Sampler(new SamplingParameters { TopP = 0.79f, Seed = 11 });
        var hits7 = 0;
        for (var i = 0; i < 2000; i++)
        {
            var token = sampler.Sample(logits, scratch);
            Assert.True(token is 7 or 99999, $"token {token} is outside the nucleus {{7, 99999}}");
            hits7 += token == 7 ? 1 : 0;
        }
        Assert.InRange(hits7 / 2000.0, 0.625 - 0.04, 0.625 + 0.04);

        // Just above 0.8 the nucleus must reach into the many small tokens (about 7500 of them carry the extra 0.01).
        sampler = new Sampler(new SamplingParameters { TopP = 0.81f, Seed = 12 });
        var others = 0;
        for (var i = 0; i < 2000; i++)
        {
            var token = sampler.Sample(logits, scratch);
            Assert.InRange(token, 0, vocabulary - 1);
            others += token is 7 or 99999 ? 0 : 1;
        }
        Assert.InRange(others / 2000.0, 0.004, 0.03);
    }

    [Fact]
    public void Top_p_and_top_k_draw_only_from_the_reference_sets_of_random_logits()
    {
        var logits = RandomLogits(150_000, 13, scale: 8f);
        var probabilities = Softmax(logits, 0.7);
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => probabilities[i]).ThenBy(i => i).ToArray();
        var nucleus = new HashSet<int>();
        var mass = 0.0;
        foreach (var token in order)
        {
            nucleus.Add(token);
            mass += probabilities[token];
            if (mass >= 0.5)
            {
                break;
            }
        }
        var top50 = order.Take(50).ToHashSet();
        var scratch = new float[logits.Length];
        var topP = new Sampler(new SamplingParameters { Temperature = 0.7f, TopP = 0.5f, Seed = 14 });
        var topK = new Sampler(new SamplingParameters { Temperature = 0.7f, TopK = 50, Seed = 15 });
        var seen = new HashSet<int>();
        for (var i = 0; i < 200; i++)
        {
            var token = topP.Sample(logits, scratch);
            Assert.Contains(token, nucleus);
            seen.Add(token);
            Assert.Contains(topK.Sample(logits, scratch), top50);
        }
        Assert.True(seen.Count > Math.Min(50, nucleus.Count / 4), $"only {seen.Count} distinct tokens from a nucleus of {nucleus.Count}");
    }

    [Fact]
    public void Equal_logits_spread_over_the_nucleus()
    {
        var logits = new float[150_000];
        var sampler = new Sampler(new SamplingParameters { TopP = 0.5f, Seed = 16 });
        var scratch = new float[logits.Length];
        var seen = new HashSet<int>();
        for (var i = 0; i < 500; i++)
        {
            var token = sampler.Sample(logits, scratch);
            Assert.InRange(token, 0, logits.Length - 1);
            seen.Add(token);
        }
        Assert.True(seen.Count > 480, $"{seen.Count} distinct tokens out of 500 draws from a 75000-token nucleus");
    }

    [Fact]
    public void Sampling_allocates_nothing_per_call()
    {
        var logits = RandomLogits(150_000, 17);
        var scratch = new float[logits.Length];
        foreach (var parameters in new[]
        {
            SamplingParameters.Greedy,
            new SamplingParameters { Seed = 1 },
            new SamplingParameters { TopK = 50, Seed = 1 },
            new SamplingParameters { TopP = 0.9f, Seed = 1 },
            new SamplingParameters { TopK = 100, TopP = 0.9f, Seed = 1 },
        })
        {
            var sampler = new Sampler(parameters);
            sampler.Sample(logits, scratch);
            // The runtime may allocate on this thread while it re-compiles a hot method (tiering); a per-call
            // allocation shows in every round, so the quietest of several rounds must be zero.
            var quietest = long.MaxValue;
            for (var round = 0; round < 5; round++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                for (var i = 0; i < 20; i++)
                {
                    sampler.Sample(logits, scratch);
                }
                quietest = Math.Min(quietest, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            Assert.Equal(0, quietest);
        }
    }

    [Fact]
    public void Bad_logits_and_scratch_are_caller_errors()
    {
        var sampler = new Sampler(new SamplingParameters { Seed = 1 });
        Assert.Throws<ArgumentException>(() => sampler.Sample([1f, 2f], new float[1]));
        Assert.Throws<ArgumentException>(() => sampler.Sample([], new float[1]));
        // NaN is never drawn; an infinite logit always is.
        Assert.Equal(1, sampler.Sample([float.NaN, 0f, float.NaN], new float[3]));
        Assert.Equal(2, sampler.Sample([0f, 1f, float.PositiveInfinity], new float[3]));
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, "temperature")]
    [InlineData(2.01f, 0, 1f, "temperature")]
    [InlineData(float.NaN, 0, 1f, "temperature")]
    [InlineData(1f, 0, 0f, "top_p")]
    [InlineData(1f, 0, 1.5f, "top_p")]
    [InlineData(1f, 0, float.NaN, "top_p")]
    [InlineData(1f, -1, 1f, "top_k")]
    public void Out_of_range_parameters_are_rejected(float temperature, int topK, float topP, string name)
    {
        var parameters = new SamplingParameters { Temperature = temperature, TopK = topK, TopP = topP };
        var e = Assert.Throws<InferenceException>(parameters.Validate);
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains(name, e.Message);
        Assert.Throws<InferenceException>(() => new Sampler(parameters));
    }

    [Fact]
    public void Boundary_parameters_are_accepted()
    {
        new SamplingParameters { Temperature = 0f, TopP = 1f, TopK = 0 }.Validate();
        new SamplingParameters { Temperature = 2f, TopP = 1e-9f, TopK = 1 }.Validate();
        Assert.True(new SamplingParameters { TopK = 1 }.IsGreedy);
        Assert.False(new SamplingParameters().IsGreedy);
    }
}
