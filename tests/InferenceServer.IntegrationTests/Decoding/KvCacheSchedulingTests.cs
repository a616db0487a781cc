using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;
using Xunit.Abstractions;
using static InferenceServer.Tests.Integration.Decoding.KvCacheDecoderTests;

namespace InferenceServer.Tests.Integration.Decoding;

/// <summary>
/// The KV-cache decoder's scheduling under a token budget and a memory budget, driven as the continuous batcher drives
/// it (admission in order while memory admits, preempted sequences back at the head of the queue): chunked prefill,
/// preemption with recompute and prefix caching, each checked at every step against a full recomputation of the same
/// tokens through the same graph, in the Optimum layout (left-padded, two halves) and onnxruntime-genai's
/// (GroupQueryAttention, right-padded, one shared buffer whose stride grows).
/// </summary>
public sealed class KvCacheSchedulingTests(ITestOutputHelper output)
{
    private static readonly DecoderOptions Small = new() { Layers = 2, DModel = 64, Heads = 4, KvHeads = 2, Vocab = 256, MaxPositions = 128, Tokenizer = false };

    public static TheoryData<bool> GenAi => [false, true];

    [Theory]
    [MemberData(nameof(GenAi))]
    public void A_long_prompt_is_read_in_chunks_of_the_token_budget_while_the_running_rows_keep_getting_a_token_every_step(bool genAi)
    {
        using var model = Load(Options(genAi), out var settings, running: 4);
        // 4 running rows and 7 tokens a step: a prompt is read 3 to 7 tokens at a time.
        settings = settings with { MaxNumBatchedTokens = 7 };
        using var decoder = new KvCacheDecoder(model, settings, KvCachePlan.Create(settings));
        var random = new Random(21);
        var sequences = new[] { 6, 9, 90, 5 }.Select(n => new TestSequence(Prompt(random, n), n + 24)).ToList();
        var driver = new Driver(decoder, model, settings);
        var steps = driver.Run(sequences, onStep: (step, batch, computed) =>
        {
            Assert.True(computed <= settings.MaxNumBatchedTokens, $"step {step} computed {computed} tokens, over the budget of {settings.MaxNumBatchedTokens}");
        });
        output.WriteLine($"{(genAi ? "genai" : "optimum")}: {steps} steps, largest difference {driver.Worst:G3}, steps where a prompt was being read beside running rows: {driver.SharedSteps}");
        // The 90-token prompt took many steps, and the rows already running got a token in each of them.
        Assert.True(driver.SharedSteps >= 10, $"only {driver.SharedSteps} steps read a prompt beside running rows");
        Assert.Equal(0, driver.RunningRowsWithoutToken);
        Assert.All(sequences, s => Assert.Equal(s.MaxLength, s.Tokens.Count));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void When_the_rows_outgrow_the_cache_the_newest_is_preempted_and_recomputed_and_every_sequence_ends_as_it_would_alone(bool genAi, bool prefixCaching)
    {
        using var model = Load(Options(genAi), out var settings, running: 6);
        var perToken = settings.KvCache!.BytesPerToken;
        // A batch region of 160 tokens (and a 64-token prefill region): six sequences of up to 60 tokens each cannot
        // all grow there at once.
        var copies = genAi ? 1 : 2;
        settings = settings with { MaxModelLen = 64, KvCacheBytes = copies * (160 + 64) * perToken, EnablePrefixCaching = prefixCaching };
        var plan = KvCachePlan.Create(settings);
        Assert.Equal(160, plan.RegionTokens);
        using var decoder = new KvCacheDecoder(model, settings, plan);
        var random = new Random(33);
        var prompts = new[] { 12, 20, 7, 16, 10, 25 }.Select(n => Prompt(random, n)).ToList();
        var sequences = prompts.Select(p => new TestSequence(p, 60)).ToList();
        var driver = new Driver(decoder, model, settings);
        driver.Run(sequences);
        output.WriteLine($"{(genAi ? "genai" : "optimum")}, prefix caching {prefixCaching}: {decoder.Preemptions} preemptions, largest difference {driver.Worst:G3}, prefix cache {decoder.PrefixCacheTokens}");
        Assert.True(decoder.Preemptions > 0, "no sequence was preempted");
        Assert.Equal(0, decoder.CacheTokens.Used);
        Assert.Equal(prefixCaching, decoder.PrefixCacheTokens.Hits > 0);

        // Each alone, with room to spare: the same tokens.
        using var alone = new KvCacheDecoder(model, settings with { KvCacheBytes = GenerationSettings.DefaultKvCacheBytes, EnablePrefixCaching = false }, KvCachePlan.Create(settings with { KvCacheBytes = GenerationSettings.DefaultKvCacheBytes }));
        for (var i = 0; i < prompts.Count; i++)
        {
            var single = new TestSequence(prompts[i], 60);
            new Driver(alone, model, settings).Run([single]);
            Assert.Equal(single.Tokens, sequences[i].Tokens);
        }
    }

    [Theory]
    [MemberData(nameof(GenAi))]
    public void A_prompt_that_starts_with_cached_blocks_reads_only_the_rest_and_gives_the_logits_of_a_cold_run(bool genAi)
    {
        using var model = Load(Options(genAi), out var settings, running: 4);
        using var decoder = new KvCacheDecoder(model, settings, KvCachePlan.Create(settings));
        var random = new Random(45);
        var system = Prompt(random, 40);
        var driver = new Driver(decoder, model, settings);

        // The first prompt is read cold: its two whole blocks (32 tokens) are kept.
        driver.Run([new TestSequence(system, 41)]);
        Assert.Equal((40L, 0L), decoder.PrefixCacheTokens);

        // The same 40 tokens and a different question: the 32 cached tokens are copied, 8 + 6 computed.
        var question = new TestSequence([.. system, .. Prompt(random, 6)], 50);
        driver.Run([question]);
        Assert.Equal((40L + 46, 32L), decoder.PrefixCacheTokens);

        // A prompt of exactly 32 cached tokens: its last token is computed (its logits give the next), so one block hits.
        driver.Run([new TestSequence(system[..32], 36)]);
        Assert.Equal((40L + 46 + 32, 32L + 16), decoder.PrefixCacheTokens);

        // Another prompt shares nothing.
        driver.Run([new TestSequence(Prompt(random, 30), 34)]);
        Assert.Equal((40L + 46 + 32 + 30, 48L), decoder.PrefixCacheTokens);

        // A finished sequence keeps its generated tokens too: the next turn of the conversation (its whole text and a
        // new message) finds the 49 tokens it held (prompt 46 + 3 generated) as three whole blocks.
        var turn = new TestSequence([.. question.Tokens, .. Prompt(random, 5)], question.Tokens.Count + 10);
        var before = decoder.PrefixCacheTokens.Hits;
        driver.Run([turn]);
        Assert.Equal(48, decoder.PrefixCacheTokens.Hits - before);
        output.WriteLine($"{(genAi ? "genai" : "optimum")}: largest difference from full recomputation {driver.Worst:G3}");
    }

    [Fact]
    public void A_full_prefix_cache_drops_its_least_recently_used_block_and_a_prefix_whose_first_block_went_is_not_matched()
    {
        using var model = Load(Small, out var settings, running: 2);
        var blockBytes = PrefixCache.BlockTokens * settings.KvCache!.BytesPerToken;
        // Room for 2 blocks.
        settings = settings with { PrefixCacheBytes = 2 * blockBytes };
        using var decoder = new KvCacheDecoder(model, settings, KvCachePlan.Create(settings));
        var random = new Random(52);
        var driver = new Driver(decoder, model, settings);
        var a = Prompt(random, 33);
        var b = Prompt(random, 17);
        driver.Run([new TestSequence(a, 34)]);
        driver.Run([new TestSequence(b, 18)]);
        // b's block took the place of a's first (the least recently used): b is found, a is not, though a's second
        // block is still held (a block is only matched after its parent).
        var hits = decoder.PrefixCacheTokens.Hits;
        driver.Run([new TestSequence([.. b, 9], 20)]);
        Assert.Equal(16, decoder.PrefixCacheTokens.Hits - hits);
        hits = decoder.PrefixCacheTokens.Hits;
        driver.Run([new TestSequence([.. a, 7], 36)]);
        Assert.Equal(0, decoder.PrefixCacheTokens.Hits - hits);
    }

    private static DecoderOptions Options(bool genAi) => genAi ? Small with { Layout = DecoderLayout.GenAi } : Small;

    private static List<int> Prompt(Random random, int length) => Enumerable.Range(0, length).Select(_ => random.Next(3, Small.Vocab)).ToList();

    /// <summary>
    /// The continuous batcher's part, by hand: admits in order while the decoder admits, steps, checks every logits row
    /// written against a full recomputation, appends the greedy token, retires a sequence at its length and puts a
    /// preempted one back at the head of the queue.
    /// </summary>
    private sealed class Driver(KvCacheDecoder decoder, IBackendModel model, GenerationSettings settings)
    {
        public float Worst { get; private set; }

        /// <summary>Steps in which a prompt was being read while other rows were decoding.</summary>
        public int SharedSteps { get; private set; }

        /// <summary>Times a row that had been decoding got no token in a step (it must not happen but by preemption).</summary>
        public int RunningRowsWithoutToken { get; private set; }

        public int Run(IReadOnlyList<TestSequence> sequences, Action<int, List<DecoderSequence>, int>? onStep = null)
        {
            var waiting = new LinkedList<TestSequence>(sequences);
            var batch = new List<DecoderSequence>();
            var decoding = new HashSet<DecoderSequence>();
            var logits = new float[settings.MaxRunningSequences * settings.LogitsWidth];
            var step = 0;
            for (; waiting.Count > 0 || batch.Count > 0; step++)
            {
                Assert.True(step < 5000, "the sequences never finished");
                while (batch.Count < settings.MaxRunningSequences && waiting.First is { } first && decoder.TryReserve(first.Value))
                {
                    batch.Add(first.Value);
                    waiting.RemoveFirst();
                }
                Assert.NotEmpty(batch);
                var processed = batch.Select(s => s.Processed).ToArray();
                var timings = default(ExecutionTimings);
                decoder.Step(batch, logits, ref timings);
                var computed = 0;
                var reading = false;
                for (var b = 0; b < batch.Count; b++)
                {
                    if (!batch[b].Preempted)
                    {
                        computed += batch[b].Processed - processed[b];
                        reading |= !decoding.Contains(batch[b]) && batch[b].Processed > processed[b];
                    }
                }
                SharedSteps += reading && batch.Any(s => decoding.Contains(s) && s.HasLogits) ? 1 : 0;
                onStep?.Invoke(step, batch, computed);
                var preempted = new List<TestSequence>();
                for (var b = 0; b < batch.Count; b++)
                {
                    var sequence = batch[b];
                    if (sequence.Preempted)
                    {
                        Assert.Null(sequence.DecoderState);
                        Assert.Equal(0, sequence.Processed);
                        preempted.Add((TestSequence)sequence);
                        decoding.Remove(sequence);
                        continue;
                    }
                    if (!sequence.HasLogits)
                    {
                        RunningRowsWithoutToken += decoding.Contains(sequence) ? 1 : 0;
                        continue;
                    }
                    var row = logits.AsSpan(b * settings.LogitsWidth, settings.LogitsWidth);
                    var expected = FullRecomputation(model, settings.KvCache!, sequence.Tokens);
                    var difference = MaxDifference(expected, row);
                    Worst = Math.Max(Worst, difference);
                    Assert.True(difference <= Tolerance, $"step {step}, row {b}: logits differ from full recomputation by {difference}");
                    Assert.Equal(sequence.Tokens.Count, sequence.Processed);
                    sequence.Tokens.Add(ArgMax(row));
                    decoding.Add(sequence);
                }
                foreach (var sequence in preempted)
                {
                    batch.Remove(sequence);
                    sequence.Preempted = false;
                }
                for (var p = preempted.Count - 1; p >= 0; p--)
                {
                    waiting.AddFirst(preempted[p]);
                }
                for (var b = batch.Count - 1; b >= 0; b--)
                {
                    if (batch[b].Tokens.Count >= batch[b].MaxLength)
                    {
                        batch[b].DecoderState!.Dispose();
                        decoding.Remove(batch[b]);
                        batch.RemoveAt(b);
                    }
                }
            }
            return step;
        }
    }
}
