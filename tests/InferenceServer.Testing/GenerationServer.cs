using System.Text;
using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Inference;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>
/// The real server (empty tensor repository) with a <see cref="FakeTextGenerator"/> serving these models:
/// "tiny" ("Hel" "lo" "" " wor" "ld"+stop, 7 prompt tokens), "tiny-length" ("ab" "cd" then an empty chunk with
/// length), "slow" (one chunk, then waits for cancellation), "busy" (full queue), "broken" (one chunk, then an engine
/// failure), "gated" (like tiny, held until <see cref="FakeScript.Gate"/> opens), and the tensor model "tensor-model".
/// </summary>
public class GenerationServerFixture : IAsyncLifetime
{
    public const string Text = "Hello world";

    public FakeTextGenerator Fake { get; } = new();

    public RunningServer Server { get; private set; } = null!;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected virtual string[] ExtraArgs => [];

    public static IReadOnlyList<GenerationChunk> TinyChunks { get; } =
    [
        new("Hel", 1, FinishReason.None),
        new("lo", 2, FinishReason.None),
        new("", 3, FinishReason.None),
        new(" wor", 4, FinishReason.None),
        new("ld", 5, FinishReason.Stop),
    ];

    public async Task InitializeAsync()
    {
        Fake.Models["tiny"] = new FakeScript { Chunks = TinyChunks };
        Fake.Models["tiny-length"] = new FakeScript
        {
            Chunks = [new("ab", 1, FinishReason.None), new("cd", 2, FinishReason.None), new("", 3, FinishReason.Length)],
            PromptTokens = 2,
        };
        Fake.Models["slow"] = new FakeScript { Chunks = [new("first", 1, FinishReason.None)], WaitForCancellation = true };
        Fake.Models["busy"] = new FakeScript { QueueFull = true };
        Fake.Models["broken"] = new FakeScript
        {
            Chunks = [new("par", 1, FinishReason.None)],
            FailWith = new InferenceException(InferenceErrorKind.Internal, "the engine failed: device lost"),
        };
        Fake.Models["gated"] = new FakeScript { Chunks = TinyChunks, Gate = Gate };
        Fake.TensorModels.Add("tensor-model");
        Server = await RunningServer.StartAsync(Paths.NewTempDirectory("generation-repo"),
            services =>
            {
                services.AddSingleton<ITextGenerator>(Fake);
                services.AddSingleton<IInferenceDispatcher>(sp =>
                {
                    Fake.Inner = sp.GetRequiredService<InferenceDispatcher>();
                    return Fake;
                });
            }, ExtraArgs);
    }

    public async Task DisposeAsync()
    {
        Gate.TrySetResult();
        await Server.DisposeAsync();
    }
}

/// <summary>The same server with an API key on the OpenAI routes.</summary>
public sealed class ApiKeyServerFixture : GenerationServerFixture
{
    public const string ApiKey = "sk-test-0123456789";

    protected override string[] ExtraArgs => ["--api-key", ApiKey];
}

/// <summary>Small helpers for JSON over HTTP and server-sent events.</summary>
public static class GenerationHttp
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<(HttpResponseMessage Response, JsonElement Body)> PostJsonAsync(HttpClient http, string path, string json)
    {
        var response = await http.PostAsync(path, Json(json));
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("   at ", text);
        using var document = JsonDocument.Parse(text);
        return (response, document.RootElement.Clone());
    }

    /// <summary>
    /// Splits a server-sent-event body into its data payloads, asserting the framing: every event is exactly one
    /// <c>data: </c> line followed by a blank line, and nothing else is in the body.
    /// </summary>
    public static List<string> Events(string body)
    {
        Assert.EndsWith("\n\n", body);
        var events = body[..^2].Split("\n\n");
        foreach (var e in events)
        {
            Assert.StartsWith("data: ", e);
            Assert.DoesNotContain('\n', e);
            Assert.DoesNotContain('\r', e);
        }
        return events.Select(e => e["data: ".Length..]).ToList();
    }

    public static JsonElement Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }
}
