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
        // Both decode loops ran multi-sequence steps: the streams were spread over the instances.
        Assert.Equal(2, batcher.LargestSteps.Count);
        Assert.All(batcher.LargestSteps, largest => Assert.True(largest > 1, $"largest steps per instance: {string.Join(", ", batcher.LargestSteps)}"));
    }

    private static GenerationRequest Request(string prompt) =>
        new() { Prompt = prompt, MaxTokens = 400, Sampling = new SamplingParameters { Temperature = 0.9f, Seed = 11 } };
}
