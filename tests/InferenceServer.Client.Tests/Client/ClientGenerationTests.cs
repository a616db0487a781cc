using InferenceServer.Client;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Client;

/// <summary>Generate and stream through the SDK against the scripted generation server.</summary>
public sealed class ClientGenerationTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    public static TheoryData<ClientProtocol> Protocols() => new(ClientProtocol.Grpc, ClientProtocol.RestJson);

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Generate_returns_the_whole_text(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var result = await client.Client.GenerateAsync(new GenerateRequest("tiny", "Say hi") { Id = "g-1", Parameters = new() { MaxTokens = 8, Temperature = 0 } });

        Assert.Equal(GenerationServerFixture.Text, result.TextOutput);
        Assert.Equal("tiny", result.ModelName);
        Assert.Equal("g-1", result.Id);
        if (protocol == ClientProtocol.Grpc)
        {
            // ModelInfer carries the text alone.
            Assert.Null(result.FinishReason);
        }
        else
        {
            Assert.Equal("stop", result.FinishReason);
            Assert.Equal(7, result.PromptTokens);
            Assert.Equal(5, result.CompletionTokens);
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task The_stream_yields_the_pieces_in_order_and_ends_with_the_finish_reason(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var chunks = new List<GenerateChunk>();
        await foreach (var chunk in client.Client.GenerateStreamAsync(new GenerateRequest("tiny", "Say hi") { Id = "s-1" }))
        {
            chunks.Add(chunk);
        }

        Assert.Equal(GenerationServerFixture.Text, string.Concat(chunks.Select(c => c.TextOutput)));
        Assert.True(chunks.Count >= 2, $"{chunks.Count} chunks");
        Assert.All(chunks[..^1], c => Assert.False(c.IsFinal));
        Assert.Equal("stop", chunks[^1].FinishReason);
        Assert.Equal(5, chunks[^1].CompletionTokens);
        Assert.Equal("s-1", chunks[^1].Id);
    }

    [Fact]
    public async Task A_tensor_model_asked_to_generate_is_an_InvalidInputException()
    {
        using var client = new TestClient(fixture.Server, ClientProtocol.RestJson);

        await Assert.ThrowsAsync<InvalidInputException>(() => client.Client.GenerateAsync(new GenerateRequest("tensor-model", "x")));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_full_queue_is_RateLimited(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol, new InferenceClientOptions { Retry = RetryPolicy.None });

        await Assert.ThrowsAsync<RateLimitedException>(() => client.Client.GenerateAsync(new GenerateRequest("busy", "x")));
        Assert.Single(client.Counter.Paths);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_call_past_its_deadline_is_DeadlineExceeded(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        await Assert.ThrowsAsync<DeadlineExceededException>(() =>
            client.Client.GenerateAsync(new GenerateRequest("slow", "x"), new CallSettings { Timeout = TimeSpan.FromMilliseconds(300) }));
    }
}

/// <summary>Generation against the real sample model bigram_lm.</summary>
public sealed class ClientBigramGenerationTests
{
    [Fact]
    public async Task Bigram_lm_generates_exactly_max_tokens_over_both_protocols()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        using var rest = new TestClient(server, ClientProtocol.RestJson);
        using var grpc = new TestClient(server, ClientProtocol.Grpc);
        var request = new GenerateRequest("bigram_lm", "The server") { Parameters = new() { MaxTokens = 3, Temperature = 0 } };

        var whole = await rest.Client.GenerateAsync(request);
        var streamed = new List<GenerateChunk>();
        await foreach (var chunk in grpc.Client.GenerateStreamAsync(request))
        {
            streamed.Add(chunk);
        }

        Assert.Equal("length", whole.FinishReason);
        Assert.Equal(3, whole.CompletionTokens);
        Assert.Equal(whole.TextOutput, string.Concat(streamed.Select(c => c.TextOutput)));
        Assert.Equal("length", streamed[^1].FinishReason);
    }
}
