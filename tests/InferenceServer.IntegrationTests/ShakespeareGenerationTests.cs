using System.Globalization;
using System.Text;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>A server with shakespeare.pt.zip as a generative model (and a one-slot copy for the queue tests).</summary>
public sealed class ShakespeareFixture : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public ShakespeareReference Reference { get; } = new();

    public ITextGenerator Generator => Server.Services.GetRequiredService<ITextGenerator>();

    public async Task InitializeAsync()
    {
        var repo = Paths.NewTempDirectory("shakespeare");
        TorchScriptRepository.Add(repo, "shakespeare", "shakespeare.pt.zip", TorchScriptRepository.ShakespeareConfig());
        TorchScriptRepository.Add(repo, "shakespeare_one_slot", "shakespeare.pt.zip", TorchScriptRepository.ShakespeareConfig(maxRunning: 1, maxWaiting: 1));
        Server = await RunningServer.StartAsync(repo);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Reference.Dispose();
    }
}

public sealed class ShakespeareGenerationTests(ShakespeareFixture fixture) : IClassFixture<ShakespeareFixture>
{
    private const string Romeo = "ROMEO:\nBut soft, what light through yonder window breaks?";

    /// <summary>Logits closer than this may order differently between batch sizes (float reassociation).</summary>
    private const float NearTie = 1e-3f;

    private static readonly string[] Prompts =
    [
        Romeo, "JULIET:\nO Romeo, Romeo!", "First Citizen:\nBefore we proceed any further, hear me speak.", "KING HENRY:\n",
        "To be, or not to be", "HAMLET:\nAlas, poor Yorick!", "Now is the winter of our discontent", "MACBETH:\nIs this a dagger",
        "All the world's a stage,", "Friends, Romans, countrymen, lend me your ears;", "O", "Nurse:\nMadam!",
        "What's in a name?", "LEAR:\nBlow, winds, and crack your cheeks!", "PROSPERO:\nWe are such stuff", "If music be the food of love, play on;",
    ];

    [Fact]
    public async Task One_greedy_stream_equals_the_direct_greedy_loop_token_for_token()
    {
        var (text, usage, finish) = await GenerateAsync("shakespeare", Romeo, 60);
        var (expected, _) = fixture.Reference.Greedy(Romeo, 60);
        Assert.Equal(expected, text);
        Assert.StartsWith("\n\nCORIOLANUS:\nI will not the state", text);
        Assert.Equal(FinishReason.Length, finish);
        Assert.Equal(new GenerationUsage(Romeo.Length, 60), usage);
    }

    [Fact]
    public async Task Concurrent_streams_each_equal_their_single_stream_output_except_after_a_near_tie()
    {
        var statistics = fixture.Server.Repository.GetReady("shakespeare", "").Statistics;
        var lengths = Prompts.Select((_, i) => 10 + (i * 7 % 50)).ToArray();
        var results = await Task.WhenAll(Prompts.Select((p, i) => GenerateAsync("shakespeare", p, lengths[i])));
        for (var i = 0; i < Prompts.Length; i++)
        {
            var (text, usage, finish) = results[i];
            Assert.Equal(FinishReason.Length, finish);
            Assert.Equal(new GenerationUsage(Prompts[i].Length, lengths[i]), usage);
            var (expected, gaps) = fixture.Reference.Greedy(Prompts[i], lengths[i]);
            var diverged = FirstDifference(expected, text);
            if (diverged >= 0)
            {
                Assert.True(gaps[diverged] < NearTie,
                    $"stream {i} diverged at token {diverged} where the top two logits differ by {gaps[diverged]} (not a near-tie):\n{expected}\nvs\n{text}");
            }
        }
        // The engine stepped several sequences at once: continuous batching, not one stream at a time.
        Assert.Contains(statistics.Batches.Keys, size => size > 1);
    }

    [Fact]
    public async Task Streams_of_different_lengths_join_and_leave_the_batch_and_all_finish()
    {
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(fixture.Server.Repository.GetReady("shakespeare", "").Runner);
        // Staggered arrivals: later streams join while earlier ones run; short ones leave while long ones go on.
        var tasks = new List<Task<(string Text, GenerationUsage Usage, FinishReason Finish)>>();
        for (var i = 0; i < 24; i++)
        {
            tasks.Add(GenerateAsync("shakespeare", Prompts[i % Prompts.Length], 5 + (i * 13 % 90)));
            if (i % 6 == 5)
            {
                await tasks[^1];
            }
        }
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < results.Length; i++)
        {
            Assert.Equal(5 + (i * 13 % 90), results[i].Usage.CompletionTokens);
            Assert.Equal(5 + (i * 13 % 90), results[i].Text.Length);
        }
        Assert.True(batcher.LargestStep > 1, $"largest step {batcher.LargestStep}");
        await WaitUntil(() => batcher.RunningCount == 0 && batcher.WaitingCount == 0);
    }

    [Fact]
    public async Task Token_counters_move_by_exactly_the_usage()
    {
        using var metrics = fixture.Server.NewMetricsClient();
        var before = await EndToEnd.ScrapeAsync(metrics);
        var (_, usage, _) = await GenerateAsync("shakespeare", "HAMLET:\n", 17);
        var after = await EndToEnd.ScrapeAsync(metrics);
        Assert.Equal(usage.PromptTokens, EndToEnd.Delta(before, after, "inference_prompt_tokens_total", "shakespeare"));
        Assert.Equal(usage.CompletionTokens, EndToEnd.Delta(before, after, "inference_generation_tokens_total", "shakespeare"));
        Assert.Equal(1, EndToEnd.Delta(before, after, "inference_time_to_first_token_seconds_count", "shakespeare"));
        Assert.Equal(usage.CompletionTokens - 1, EndToEnd.Delta(before, after, "inference_time_per_output_token_seconds_count", "shakespeare"));
        Assert.Equal(1, EndToEnd.Delta(before, after, "inference_e2e_request_latency_seconds_count", "shakespeare"));
        Assert.Equal(usage.PromptTokens, EndToEnd.Delta(before, after, "inference_request_prompt_tokens_sum", "shakespeare"));
        Assert.Equal(usage.CompletionTokens, EndToEnd.Delta(before, after, "inference_request_generation_tokens_sum", "shakespeare"));
    }

    [Fact]
    public async Task A_cancelled_stream_frees_its_slot_and_the_full_waiting_queue_refuses()
    {
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(fixture.Server.Repository.GetReady("shakespeare_one_slot", "").Runner);
        using var first = new CancellationTokenSource();
        using var second = new CancellationTokenSource();
        var running = await fixture.Generator.GenerateAsync("shakespeare_one_slot", null, Request(Romeo, 4000), first.Token);
        await running.Chunks.ReadAsync();
        var waiting = await fixture.Generator.GenerateAsync("shakespeare_one_slot", null, Request(Romeo, 4000), second.Token);
        await WaitUntil(() => batcher.WaitingCount == 1);

        // One running, one waiting: the bound is reached.
        var refused = await Assert.ThrowsAsync<InferenceException>(async () =>
            await fixture.Generator.GenerateAsync("shakespeare_one_slot", null, Request(Romeo, 10), CancellationToken.None));
        Assert.Equal(InferenceErrorKind.ResourceExhausted, refused.Kind);
        Assert.NotNull(refused.RetryAfter);

        // Cancelling the running stream hands its slot to the waiting one.
        first.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Drain(running));
        await WaitUntil(() => batcher.WaitingCount == 0);
        await waiting.Chunks.ReadAsync();
        second.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Drain(waiting));
        await WaitUntil(() => batcher.RunningCount == 0);

        var (text, usage, _) = await GenerateAsync("shakespeare_one_slot", Romeo, 12);
        Assert.Equal(fixture.Reference.Greedy(Romeo, 12).Text, text);
        Assert.Equal(12, usage.CompletionTokens);
    }

    [Fact]
    public async Task Stop_sequences_end_the_text_before_them()
    {
        var (full, _, _) = await GenerateAsync("shakespeare", Romeo, 40);
        var stop = full.Substring(15, 3);
        var cut = full.IndexOf(stop, StringComparison.Ordinal);
        var request = new GenerationRequest { Prompt = Romeo, MaxTokens = 40, Stop = [stop] };
        var (text, usage, finish) = await CollectAsync(await fixture.Generator.GenerateAsync("shakespeare", null, request, CancellationToken.None));
        Assert.Equal(full[..cut], text);
        Assert.Equal(FinishReason.Stop, finish);
        Assert.True(usage.CompletionTokens < 40);
    }

    [Fact]
    public async Task Seeded_sampling_is_reproducible_and_differs_from_greedy()
    {
        GenerationRequest Sampled(ulong seed) => new() { Prompt = Romeo, MaxTokens = 50, Sampling = new SamplingParameters { Temperature = 1.0f, TopP = 0.95f, Seed = seed } };
        var a = await CollectAsync(await fixture.Generator.GenerateAsync("shakespeare", null, Sampled(7), CancellationToken.None));
        var b = await CollectAsync(await fixture.Generator.GenerateAsync("shakespeare", null, Sampled(7), CancellationToken.None));
        var c = await CollectAsync(await fixture.Generator.GenerateAsync("shakespeare", null, Sampled(8), CancellationToken.None));
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(a.Text, c.Text);
        Assert.NotEqual(fixture.Reference.Greedy(Romeo, 50).Text, a.Text);
    }

    [Fact]
    public async Task The_span_carries_the_GenAI_model_and_usage_attributes()
    {
        var id = Guid.NewGuid().ToString("N");
        var finished = new System.Collections.Concurrent.ConcurrentBag<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == InferenceServer.Observability.Telemetry.SourceName,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = finished.Add,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var request = new GenerationRequest { Prompt = "KING:\n", MaxTokens = 9, Operation = "chat", Id = id };
        var (_, usage, _) = await CollectAsync(await fixture.Generator.GenerateAsync("shakespeare", null, request, CancellationToken.None));
        await WaitUntil(() => finished.Any(a => (a.GetTagItem("gen_ai.response.id") as string) == id));
        var span = finished.Single(a => (a.GetTagItem("gen_ai.response.id") as string) == id);
        Assert.Equal("chat shakespeare", span.DisplayName);
        Assert.Equal("chat", span.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("shakespeare", span.GetTagItem("gen_ai.request.model"));
        Assert.Equal(usage.PromptTokens, span.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(usage.CompletionTokens, span.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(new[] { "length" }, (string[])span.GetTagItem("gen_ai.response.finish_reasons")!);
    }

    [Fact]
    public async Task Bad_requests_are_invalid_arguments()
    {
        async Task<InferenceException> Refused(string model, GenerationRequest request) =>
            await Assert.ThrowsAsync<InferenceException>(async () => await fixture.Generator.GenerateAsync(model, null, request, CancellationToken.None));

        Assert.Equal(InferenceErrorKind.InvalidArgument, (await Refused("shakespeare", new GenerationRequest { Prompt = "naïve" })).Kind);
        Assert.Contains("ï", (await Refused("shakespeare", new GenerationRequest { Prompt = "naïve" })).Message);
        Assert.Equal(InferenceErrorKind.InvalidArgument, (await Refused("shakespeare", new GenerationRequest { Prompt = "x", MaxTokens = 0 })).Kind);
        Assert.Equal(InferenceErrorKind.InvalidArgument, (await Refused("shakespeare", new GenerationRequest { Prompt = "x", MaxTokens = 1_000_000 })).Kind);
        Assert.Equal(InferenceErrorKind.InvalidArgument,
            (await Refused("shakespeare", new GenerationRequest { Prompt = "x", Sampling = new SamplingParameters { Temperature = -1 } })).Kind);
        Assert.Equal(InferenceErrorKind.InvalidArgument, (await Refused("shakespeare", new GenerationRequest { Prompt = "x", Stop = ["a", "b", "c", "d", "e"] })).Kind);
        Assert.Equal(InferenceErrorKind.NotFound, (await Refused("no_such_model", new GenerationRequest { Prompt = "x" })).Kind);
        // Nothing was left holding a slot.
        await WaitUntil(() => Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(fixture.Server.Repository.GetReady("shakespeare", "").Runner).RunningCount == 0);
    }

    private async Task<(string Text, GenerationUsage Usage, FinishReason Finish)> GenerateAsync(string model, string prompt, int tokens) =>
        await CollectAsync(await fixture.Generator.GenerateAsync(model, null, Request(prompt, tokens), CancellationToken.None));

    private static GenerationRequest Request(string prompt, int tokens) => new() { Prompt = prompt, MaxTokens = tokens };

    internal static async Task<(string Text, GenerationUsage Usage, FinishReason Finish)> CollectAsync(GenerationStream stream)
    {
        var text = new StringBuilder();
        var completion = 0;
        var finish = FinishReason.None;
        await foreach (var chunk in stream.Chunks.ReadAllAsync())
        {
            text.Append(chunk.Text);
            completion = chunk.CompletionTokens;
            finish = chunk.FinishReason;
        }
        return (text.ToString(), new GenerationUsage(stream.PromptTokens, completion), finish);
    }

    private static async Task Drain(GenerationStream stream)
    {
        await foreach (var _ in stream.Chunks.ReadAllAsync())
        {
        }
    }

    private static int FirstDifference(string a, string b)
    {
        for (var i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }
        return a.Length == b.Length ? -1 : Math.Min(a.Length, b.Length);
    }

    internal static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 30 s");
            await Task.Delay(10);
        }
    }
}
