using System.Text.Json;
using InferenceServer.Backends.TorchSharp;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The official OpenAI Node.js library, unchanged, against the sample <c>bigram_lm</c> (tests/clients/node/chat.mjs;
/// tests/run.sh installs the pinned package with npm).
/// </summary>
public sealed class OpenAiNodeClientTests(SampleServerFixture fixture) : IClassFixture<SampleServerFixture>
{
    private const string Prompt = "The server";

    [Fact]
    public async Task Official_node_client_gets_whole_and_streamed_completions()
    {
        var directory = Path.Combine(Paths.RepositoryRoot, "tests", "clients", "node");
        Assert.True(File.Exists(Path.Combine(directory, "node_modules", "openai", "package.json")),
            "the OpenAI Node.js package is not installed: run tests/run.sh (it runs `npm install` in tests/clients/node)");
        var info = LibStdCxxCompat.ChildProcess("node", "chat.mjs");
        info.WorkingDirectory = directory;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.Environment["OPENAI_BASE_URL"] = $"{fixture.Server.Http.BaseAddress}v1";
        info.Environment["OPENAI_API_KEY"] = "unused";
        info.Environment["MODEL"] = SampleModels.BigramName;
        info.Environment["PROMPT"] = Prompt;
        using var process = System.Diagnostics.Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"node exited with {process.ExitCode}: {await errors}");

        using var result = JsonDocument.Parse(await output);
        var root = result.RootElement;
        Assert.Contains(SampleModels.BigramName, root.GetProperty("models").EnumerateArray().Select(m => m.GetString()));

        // The default chat template renders the message as "The server\n": 11 character tokens.
        var chat = root.GetProperty("chat");
        var expected = await GreedyAsync(Prompt + "\n", 24);
        Assert.Equal(expected, chat.GetProperty("text").GetString());
        Assert.Equal("length", chat.GetProperty("finish").GetString());
        Assert.Equal(11, chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(24, chat.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(35, chat.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var streamed = root.GetProperty("streamed");
        Assert.Equal(expected, streamed.GetProperty("text").GetString());
        Assert.True(streamed.GetProperty("pieces").GetInt32() > 1);
        Assert.Equal("length", streamed.GetProperty("finish").GetString());
        Assert.Equal(24, streamed.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        Assert.Equal(await GreedyAsync(Prompt, 12), root.GetProperty("completion").GetString());

        var error = root.GetProperty("error");
        Assert.Equal(404, error.GetProperty("status").GetInt32());
        Assert.Equal("not_found_error", error.GetProperty("type").GetString());
    }

    private async Task<string> GreedyAsync(string prompt, int tokens)
    {
        var generator = fixture.Server.Services.GetRequiredService<ITextGenerator>();
        var stream = await generator.GenerateAsync(SampleModels.BigramName, null, new GenerationRequest { Prompt = prompt, MaxTokens = tokens }, CancellationToken.None);
        return (await ShakespeareGenerationTests.CollectAsync(stream)).Text;
    }
}
