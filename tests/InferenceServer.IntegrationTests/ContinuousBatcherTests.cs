using InferenceServer.Generation;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>The continuous batcher with several engine instances, on the generated bigram model (ONNX Runtime).</summary>
public sealed class ContinuousBatcherTests
{
    [Fact]
    public async Task Two_instances_share_the_streams_and_every_stream_gets_its_single_stream_text()
    {
        var repo = Paths.NewTempDirectory("two-instances");
        SampleModels.Bigram().Save(Path.Combine(repo, "lm", "1", "model.onnx"));
        File.WriteAllText(Path.Combine(repo, "lm", "config.yaml"), SampleModels.BigramConfigYaml.Replace("max_batch_size: 64", "max_batch_size: 64\ninstance_group: [{count: 2, kind: KIND_CPU}]", StringComparison.Ordinal));
        await using var server = await RunningServer.StartAsync(repo);
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(server.Repository.GetReady("lm", "").Runner);

        string[] prompts = ["The", "A", "When", "No", "Some", "At", "Then", "Each"];
        var single = new List<string>();
        foreach (var prompt in prompts)
        {
            single.Add((await ShakespeareGenerationTests.CollectAsync(await generator.GenerateAsync("lm", null, Request(prompt), CancellationToken.None))).Text);
        }
        var together = await Task.WhenAll(prompts.Select(async p =>
            (await ShakespeareGenerationTests.CollectAsync(await generator.GenerateAsync("lm", null, Request(p), CancellationToken.None))).Text));

        Assert.Equal(single, together);
        // The streams were spread over the instances: both decode loops ran steps, and sequences shared a step. (That
        // each loop ran a multi-sequence step depends on when the second loop's thread wakes: on a loaded machine one
        // loop may take its share of four while the other only ever sees late arrivals one at a time.)
        Assert.Equal(2, batcher.LargestSteps.Count);
        var largest = string.Join(", ", batcher.LargestSteps);
        Assert.All(batcher.LargestSteps, steps => Assert.True(steps >= 1, $"an instance ran no step; largest steps per instance: {largest}"));
        Assert.True(batcher.LargestStep > 1, $"no step ran more than one sequence; largest steps per instance: {largest}");
    }

    private static GenerationRequest Request(string prompt) =>
        new() { Prompt = prompt, MaxTokens = 400, Sampling = new SamplingParameters { Temperature = 0.9f, Seed = 11 } };
}
