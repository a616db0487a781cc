using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Grpc.Core;
using InferenceServer.ModelBuilder;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;
using static InferenceServer.Tests.Infrastructure.GenerationHttp;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// A server with shakespeare.pt.zip as <c>shakespeare</c> (64 slots) and as <c>shakespeare_one_slot</c> (one running
/// and one waiting sequence, and a <c>max_tokens_limit</c> high enough that a stream the tests leave open cannot end on
/// its own while they look at it, however fast the machine), with the direct greedy loop as the reference.
/// </summary>
public sealed class GenerationEndToEndFixture : IAsyncLifetime
{
    public const string Model = "shakespeare";
    public const string OneSlot = "shakespeare_one_slot";

    /// <summary>max_tokens of the streams the tests hold open: 100 s of generation even at 0.1 ms a token.</summary>
    public const int Endless = 1_000_000;

    public RunningServer Server { get; private set; } = null!;

    public ShakespeareReference Reference { get; } = new();

    public async Task InitializeAsync()
    {
        var repo = Paths.NewTempDirectory("generation-e2e");
        TorchScriptRepository.Add(repo, Model, "shakespeare.pt.zip", TorchScriptRepository.ShakespeareConfig());
        TorchScriptRepository.Add(repo, OneSlot, "shakespeare.pt.zip",
            TorchScriptRepository.ShakespeareConfig(maxRunning: 1, maxWaiting: 1) + $"\n  max_tokens_limit: {Endless}");
        Server = await RunningServer.StartAsync(repo);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Reference.Dispose();
    }
}

/// <summary>
/// Text generation end to end with the real shakespeare.pt.zip (TorchSharp) behind the real server on loopback, through
/// real clients: the official OpenAI .NET client, raw server-sent events over <see cref="HttpClient"/> (as curl -N reads
/// them), Triton's generate and generate_stream, and gRPC ModelStreamInfer / ModelInfer. Greedy text is checked against
/// the direct in-process loop (<see cref="ShakespeareReference"/>), usage against the prompt's characters, and the
/// scheduler's bounds (a disconnected client's slot, the waiting queue) and the token metrics through the protocols.
/// The tests of this class run one at a time on their own server, so each sees the models idle.
/// </summary>
public sealed class GenerationEndToEndTests(GenerationEndToEndFixture fixture) : IClassFixture<GenerationEndToEndFixture>
{
    private const string Model = GenerationEndToEndFixture.Model;
    private const string OneSlot = GenerationEndToEndFixture.OneSlot;
    private const int Endless = GenerationEndToEndFixture.Endless;
    private const string Romeo = "ROMEO:\nBut soft, what light through yonder window breaks?";
    private const string Juliet = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?";

    /// <summary>Logits closer than this may order differently between batch sizes (float reassociation).</summary>
    private const float NearTie = 1e-3f;

    private RunningServer Server => fixture.Server;

    public static TheoryData<string> Prefixes => new() { "/v1", "/openai/v1" };

    [Theory]
    [MemberData(nameof(Prefixes))]
    public async Task Official_OpenAI_client_chats_whole_and_streamed_with_the_greedy_text_and_exact_usage(string prefix)
    {
        ChatMessage[] messages = [new SystemChatMessage("KING HENRY:"), new UserChatMessage("Once more unto the breach, dear friends, once more;")];
        const string rendered = "KING HENRY:\nOnce more unto the breach, dear friends, once more;\n";
        var expected = fixture.Reference.Greedy(rendered, 40).Text;
        await EndToEnd.ChatWholeAndStreamedAsync(Server, prefix, Model, messages, rendered.Length, 40, expected);
    }

    [Fact]
    public async Task Raw_SSE_completion_stream_adds_up_to_the_greedy_text_and_ends_with_usage_and_DONE()
    {
        const int tokens = 50;
        var body = JsonSerializer.Serialize(new
        {
            model = Model, prompt = Romeo, max_tokens = tokens, temperature = 0, stream = true, stream_options = new { include_usage = true },
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(body) };
        using var response = await Server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.CacheControl?.NoCache);
        var events = Events(await response.Content.ReadAsStringAsync());

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Parse).ToList();
        var content = chunks[..^1];
        var usageChunk = chunks[^1];
        Assert.All(chunks, c =>
        {
            Assert.Equal("text_completion", c.GetProperty("object").GetString());
            Assert.Equal(Model, c.GetProperty("model").GetString());
            Assert.Equal(chunks[0].GetProperty("id").GetString(), c.GetProperty("id").GetString());
        });
        Assert.All(content, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        Assert.True(content.Count > 1, $"{content.Count} content chunks: the text should arrive in pieces");
        var text = string.Concat(content.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(fixture.Reference.Greedy(Romeo, tokens).Text, text);
        Assert.All(content[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Equal("length", content[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        var usage = usageChunk.GetProperty("usage");
        Assert.Equal(Romeo.Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(tokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(Romeo.Length + tokens, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Triton_generate_and_generate_stream_give_the_greedy_text()
    {
        const int tokens = 45;
        var expected = fixture.Reference.Greedy(Juliet, tokens).Text;
        var body = JsonSerializer.Serialize(new { text_input = Juliet, parameters = new { max_tokens = tokens, temperature = 0 } });

        var (response, whole) = await PostJsonAsync(Server.Http, $"/v2/models/{Model}/generate", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Model, whole.GetProperty("model_name").GetString());
        Assert.Equal("1", whole.GetProperty("model_version").GetString());
        Assert.Equal(expected, whole.GetProperty("text_output").GetString());
        Assert.Equal("length", whole.GetProperty("finish_reason").GetString());
        Assert.Equal(Juliet.Length, whole.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(tokens, whole.GetProperty("completion_tokens").GetInt32());

        using var streamed = await Server.Http.PostAsync($"/v2/models/{Model}/generate_stream", Json(body));
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType?.MediaType);
        var events = Events(await streamed.Content.ReadAsStringAsync()).Select(Parse).ToList();
        Assert.True(events.Count > 1, $"{events.Count} events: the text should arrive in pieces");
        Assert.Equal(expected, string.Concat(events.Select(e => e.GetProperty("text_output").GetString())));
        Assert.All(events[..^1], e => Assert.False(e.TryGetProperty("finish_reason", out _)));
        Assert.Equal("length", events[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(Juliet.Length, events[^1].GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(tokens, events[^1].GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task ModelStreamInfer_runs_two_generations_on_one_call_each_adding_up_to_its_greedy_text()
    {
        (string Id, string Prompt, int Tokens)[] requests = [("romeo", Romeo, 60), ("juliet", Juliet, 35)];
        using var call = Server.Grpc.ModelStreamInfer();
        foreach (var (id, prompt, tokens) in requests)
        {
            await call.RequestStream.WriteAsync(EndToEnd.TextRequest(Model, prompt, tokens, id));
        }
        await call.RequestStream.CompleteAsync();
        var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();

        Assert.All(responses, r => Assert.Equal("", r.ErrorMessage));
        Assert.Equal(requests.Select(r => r.Id).Order(), responses.Select(r => r.InferResponse.Id).Distinct().Order());
        foreach (var (id, prompt, tokens) in requests)
        {
            var mine = responses.Where(r => r.InferResponse.Id == id).ToList();
            Assert.All(mine, r => Assert.Equal(Model, r.InferResponse.ModelName));
            Assert.Equal([.. Enumerable.Repeat(false, mine.Count - 1), true], mine.Select(EndToEnd.IsFinal));
            var final = mine[^1].InferResponse.Parameters;
            Assert.Equal("length", final["finish_reason"].StringParam);
            Assert.Equal(prompt.Length, final["prompt_tokens"].Int64Param);
            Assert.Equal(tokens, final["completion_tokens"].Int64Param);
            AssertGreedyUpToANearTie(prompt, tokens, string.Concat(mine.Select(r => EndToEnd.TextOutput(r.InferResponse))), id);
        }
    }

    [Fact]
    public async Task A_client_disconnecting_mid_stream_frees_the_slot_and_counts_as_cancelled()
    {
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(Server.Repository.GetReady(OneSlot, "").Runner);
        using var metrics = Server.NewMetricsClient();
        var before = await EndToEnd.ScrapeAsync(metrics);

        await using (var stream = new EndToEnd.CompletionStream(Server, OneSlot, Romeo, Endless))
        {
            stream.Start();
            var first = Parse(await stream.ReadEventAsync());
            Assert.NotEmpty(first.GetProperty("choices")[0].GetProperty("text").GetString()!);
            Assert.Equal(1, batcher.RunningCount);
        }
        await EndToEnd.WaitUntil(() => batcher.RunningCount == 0);

        var after = await EndToEnd.ScrapeAsync(metrics);
        Assert.Equal(1, EndToEnd.Delta(before, after, "inference_generation_requests_total", OneSlot, "cancelled"));
        Assert.Equal(0, EndToEnd.Delta(before, after, "inference_generation_requests_total", OneSlot, "length"));
        // It stopped where the client left, not at its max_tokens.
        Assert.InRange(EndToEnd.Delta(before, after, "inference_generation_tokens_total", OneSlot), 1, Endless - 1);

        // The slot is free: a new request on the one-slot model runs and completes normally.
        var (response, body) = await PostJsonAsync(Server.Http, "/v1/completions",
            JsonSerializer.Serialize(new { model = OneSlot, prompt = Romeo, max_tokens = 12, temperature = 0 }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(fixture.Reference.Greedy(Romeo, 12).Text, body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(12, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task A_full_waiting_queue_answers_429_over_HTTP_and_RESOURCE_EXHAUSTED_over_gRPC()
    {
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(Server.Repository.GetReady(OneSlot, "").Runner);
        await using var running = new EndToEnd.CompletionStream(Server, OneSlot, Romeo, Endless);
        await using var waiting = new EndToEnd.CompletionStream(Server, OneSlot, Juliet, Endless);
        try
        {
            running.Start();
            await running.ReadEventAsync();
            waiting.Start();
            await EndToEnd.WaitUntil(() => batcher.WaitingCount == 1);
            Assert.Equal(1, batcher.RunningCount);

            // One running, one waiting (max_waiting_sequences 1): whole and streamed requests are refused before any event.
            foreach (var stream in new[] { false, true })
            {
                var response = await Server.Http.PostAsync("/v1/completions",
                    Json(JsonSerializer.Serialize(new { model = OneSlot, prompt = "HAMLET:\n", max_tokens = 5, stream })));
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.TooManyRequests, $"stream {stream}: {response.StatusCode} {text}");
                Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
                Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
                var error = Parse(text).GetProperty("error");
                Assert.Equal("rate_limit_exceeded", error.GetProperty("type").GetString());
                Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
                Assert.Contains("max_waiting_sequences", error.GetProperty("message").GetString());
            }

            var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(EndToEnd.TextRequest(OneSlot, "HAMLET:\n", 5)).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Contains("max_waiting_sequences", e.Status.Detail);
            Assert.Equal("1000", e.Trailers.GetValue("grpc-retry-pushback-ms"));
            Assert.Equal((1, 1), (batcher.RunningCount, batcher.WaitingCount));
        }
        finally
        {
            // Both clients go away; the waiting request leaves without running and the model is idle again.
            await waiting.DisposeAsync();
            await running.DisposeAsync();
            await EndToEnd.WaitUntil(() => batcher.RunningCount == 0 && batcher.WaitingCount == 0);
        }
    }

    [Fact]
    public async Task A_waiting_client_that_leaves_gives_up_its_place_and_its_stream_opened_before_its_first_token()
    {
        var batcher = Assert.IsType<InferenceServer.Scheduling.ContinuousBatcher>(Server.Repository.GetReady(OneSlot, "").Runner);
        await using var running = new EndToEnd.CompletionStream(Server, OneSlot, Romeo, Endless);
        await using var waiting = new EndToEnd.CompletionStream(Server, OneSlot, Juliet, Endless);
        await using var next = new EndToEnd.CompletionStream(Server, OneSlot, Juliet, Endless);
        try
        {
            running.Start();
            await running.ReadEventAsync();
            waiting.Start();
            await EndToEnd.WaitUntil(() => batcher.WaitingCount == 1);
            // The stream is open (status and headers sent) while the request still waits for the slot.
            await waiting.HeadersAsync();
            // The repository's gauges see one running and one waiting request holding the model.
            using (var scrape = Server.NewMetricsClient())
            {
                var live = await EndToEnd.ScrapeAsync(scrape);
                Assert.Equal(2, live.Single(m => m.Name == "inference_requests_in_flight" && m.Labels["model"] == OneSlot).Value);
                Assert.Equal(1, live.Single(m => m.Name == "inference_queue_depth" && m.Labels["model"] == OneSlot).Value);
            }

            await waiting.DisposeAsync();
            await EndToEnd.WaitUntil(() => batcher.WaitingCount == 0);
            Assert.Equal(1, batcher.RunningCount);
            // Its place is free: the next request queues instead of being refused.
            next.Start();
            await EndToEnd.WaitUntil(() => batcher.WaitingCount == 1);
            await next.HeadersAsync();
        }
        finally
        {
            await next.DisposeAsync();
            await waiting.DisposeAsync();
            await running.DisposeAsync();
            await EndToEnd.WaitUntil(() => batcher.RunningCount == 0 && batcher.WaitingCount == 0);
        }
        // The gauges come back to zero once the model is idle.
        using var metrics = Server.NewMetricsClient();
        var samples = await EndToEnd.ScrapeAsync(metrics);
        Assert.Equal(0, samples.Single(m => m.Name == "inference_num_requests_running" && m.Labels["model"] == OneSlot).Value);
        Assert.Equal(0, samples.Single(m => m.Name == "inference_num_requests_waiting" && m.Labels["model"] == OneSlot).Value);
    }

    [Fact]
    public async Task Token_counters_move_by_exactly_the_usage_the_OpenAI_API_reports()
    {
        using var metrics = Server.NewMetricsClient();
        var client = EndToEnd.Client(Server, "/v1", Model);
        var before = await EndToEnd.ScrapeAsync(metrics);
        ChatCompletion completion = await client.CompleteChatAsync(
            [new UserChatMessage("MACBETH:\nIs this a dagger which I see before me?")], new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = 23 });
        var after = await EndToEnd.ScrapeAsync(metrics);

        Assert.Equal(("MACBETH:\nIs this a dagger which I see before me?\n".Length, 23), (completion.Usage.InputTokenCount, completion.Usage.OutputTokenCount));
        Assert.Equal(completion.Usage.InputTokenCount, EndToEnd.Delta(before, after, "inference_prompt_tokens_total", Model));
        Assert.Equal(completion.Usage.OutputTokenCount, EndToEnd.Delta(before, after, "inference_generation_tokens_total", Model));
        Assert.Equal(completion.Usage.InputTokenCount, EndToEnd.Delta(before, after, "inference_request_prompt_tokens_sum", Model));
        Assert.Equal(completion.Usage.OutputTokenCount, EndToEnd.Delta(before, after, "inference_request_generation_tokens_sum", Model));
        Assert.Equal(1, EndToEnd.Delta(before, after, "inference_generation_requests_total", Model, "length"));
        Assert.Equal(1, EndToEnd.Delta(before, after, "inference_generation_requests_total", Model));
    }

    /// <summary>
    /// <paramref name="actual"/> is the greedy text of <paramref name="prompt"/>, or departs from it only where the top two
    /// logits were within <see cref="NearTie"/> (the batch it ran in may order such a pair differently).
    /// </summary>
    private void AssertGreedyUpToANearTie(string prompt, int tokens, string actual, string what)
    {
        var (expected, gaps) = fixture.Reference.Greedy(prompt, tokens);
        Assert.Equal(tokens, actual.Length);
        var diverged = Enumerable.Range(0, tokens).FirstOrDefault(i => expected[i] != actual[i], -1);
        if (diverged >= 0)
        {
            Assert.True(gaps[diverged] < NearTie,
                $"{what} diverged at token {diverged} where the top two logits differ by {gaps[diverged]} (not a near-tie):\n{expected}\nvs\n{actual}");
        }
    }
}

/// <summary>
/// The official OpenAI .NET client against the generative sample model <c>bigram_lm</c> of the repository a fresh clone
/// serves (ONNX Runtime), whose greedy text is the chain of its bigram table's largest entries.
/// </summary>
public sealed class GenerationEndToEndSampleTests(SampleServerFixture fixture) : IClassFixture<SampleServerFixture>
{
    public static TheoryData<string> Prefixes => new() { "/v1", "/openai/v1" };

    [Theory]
    [MemberData(nameof(Prefixes))]
    public async Task Official_OpenAI_client_chats_with_bigram_lm_whole_and_streamed(string prefix)
    {
        ChatMessage[] messages = [new SystemChatMessage("Be brief."), new UserChatMessage("Tell me about the server")];
        const string rendered = "Be brief.\nTell me about the server\n";
        const int tokens = 30;
        await EndToEnd.ChatWholeAndStreamedAsync(fixture.Server, prefix, SampleModels.BigramName, messages, rendered.Length, tokens, SampleModels.BigramGreedy(rendered[^1], tokens));
    }

    [Fact]
    public async Task Its_metadata_over_REST_and_gRPC_lists_text_input_and_text_output()
    {
        using (var rest = JsonDocument.Parse(await fixture.Server.Http.GetStringAsync($"/v2/models/{SampleModels.BigramName}")))
        {
            var input = Assert.Single(rest.RootElement.GetProperty("inputs").EnumerateArray());
            Assert.Equal(("text_input", "BYTES"), (input.GetProperty("name").GetString(), input.GetProperty("datatype").GetString()));
            Assert.Equal([1L], input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
            var output = Assert.Single(rest.RootElement.GetProperty("outputs").EnumerateArray());
            Assert.Equal(("text_output", "BYTES"), (output.GetProperty("name").GetString(), output.GetProperty("datatype").GetString()));
            Assert.Equal([-1L], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        }
        var metadata = await fixture.Server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = SampleModels.BigramName });
        Assert.Equal(["1"], metadata.Versions);
        Assert.Equal(("text_input", "BYTES"), (Assert.Single(metadata.Inputs).Name, metadata.Inputs[0].Datatype));
        Assert.Equal(("text_output", "BYTES"), (Assert.Single(metadata.Outputs).Name, metadata.Outputs[0].Datatype));
    }

    [Fact]
    public async Task The_tensor_APIs_generate_its_greedy_text_whole_and_streamed()
    {
        // The dispatcher sends a text_input request for a generative model to its continuous batcher, over every tensor API.
        const string prompt = "Tell me";
        const int tokens = 12;
        var expected = SampleModels.BigramGreedy(prompt[^1], tokens);

        var body = $$$"""{"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["{{{prompt}}}"]}], "parameters": {"max_tokens": {{{tokens}}}, "temperature": 0}}""";
        var response = await fixture.Server.Http.PostAsync($"/v2/models/{SampleModels.BigramName}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using (var rest = JsonDocument.Parse(await response.Content.ReadAsStringAsync()))
        {
            var output = Assert.Single(rest.RootElement.GetProperty("outputs").EnumerateArray());
            Assert.Equal("text_output", output.GetProperty("name").GetString());
            Assert.Equal(expected, Assert.Single(output.GetProperty("data").EnumerateArray()).GetString());
        }

        ModelInferRequest Request(bool? stream)
        {
            var request = new ModelInferRequest { ModelName = SampleModels.BigramName, Id = "bigram" };
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
            {
                Name = "text_input", Datatype = "BYTES", Shape = { 1 }, Contents = new InferTensorContents { BytesContents = { Google.Protobuf.ByteString.CopyFromUtf8(prompt) } },
            });
            request.Parameters["max_tokens"] = new InferParameter { Int64Param = tokens };
            request.Parameters["temperature"] = new InferParameter { DoubleParam = 0 };
            if (stream is { } streamed)
            {
                request.Parameters["stream"] = new InferParameter { BoolParam = streamed };
            }
            return request;
        }
        var whole = await fixture.Server.Grpc.ModelInferAsync(Request(stream: null));
        Assert.Equal(expected, Assert.Single(whole.Outputs).Contents.BytesContents[0].ToStringUtf8());

        using var call = fixture.Server.Grpc.ModelStreamInfer();
        await call.RequestStream.WriteAsync(Request(stream: true));
        await call.RequestStream.CompleteAsync();
        var pieces = new List<string>();
        var finals = 0;
        await foreach (var piece in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal("", piece.ErrorMessage);
            pieces.Add(piece.InferResponse.Outputs.Count > 0 ? piece.InferResponse.Outputs[0].Contents.BytesContents[0].ToStringUtf8() : "");
            finals += piece.InferResponse.Parameters["triton_final_response"].BoolParam ? 1 : 0;
        }
        Assert.Equal(expected, string.Concat(pieces));
        Assert.True(pieces.Count > 2, $"{pieces.Count} responses: the text should arrive in pieces");
        Assert.Equal(1, finals);
    }
}

/// <summary>Clients and checks shared by the end-to-end generation tests.</summary>
internal static partial class EndToEnd
{
    /// <summary>The official client for <paramref name="model"/> at the server's <paramref name="prefix"/> (no API key is configured).</summary>
    public static ChatClient Client(RunningServer server, string prefix, string model) =>
        new(model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Http.BaseAddress!, prefix) });

    /// <summary>
    /// A greedy chat, whole and then streamed: both give <paramref name="expected"/>, stop for length, and report
    /// <paramref name="promptTokens"/> and <paramref name="maxTokens"/> as their usage.
    /// </summary>
    public static async Task ChatWholeAndStreamedAsync(
        RunningServer server, string prefix, string model, ChatMessage[] messages, int promptTokens, int maxTokens, string expected)
    {
        var client = Client(server, prefix, model);
        var options = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = maxTokens };

        ChatCompletion whole = await client.CompleteChatAsync(messages, options);
        Assert.Equal(expected, Assert.Single(whole.Content).Text);
        Assert.Equal(ChatMessageRole.Assistant, whole.Role);
        Assert.Equal(ChatFinishReason.Length, whole.FinishReason);
        Assert.Equal(model, whole.Model);
        Assert.Equal((promptTokens, maxTokens, promptTokens + maxTokens),
            (whole.Usage.InputTokenCount, whole.Usage.OutputTokenCount, whole.Usage.TotalTokenCount));

        var text = new StringBuilder();
        var finishes = new List<ChatFinishReason>();
        var usages = new List<ChatTokenUsage>();
        var updates = 0;
        await foreach (var update in client.CompleteChatStreamingAsync(messages, options))
        {
            updates++;
            Assert.Equal(model, update.Model);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            if (update.FinishReason is { } finish)
            {
                finishes.Add(finish);
            }
            if (update.Usage is { } usage)
            {
                usages.Add(usage);
            }
        }
        Assert.Equal(Assert.Single(whole.Content).Text, text.ToString());
        Assert.True(updates > 2, $"{updates} updates: the text should arrive in pieces");
        Assert.Equal(ChatFinishReason.Length, Assert.Single(finishes));
        var streamedUsage = Assert.Single(usages);
        Assert.Equal((promptTokens, maxTokens, promptTokens + maxTokens),
            (streamedUsage.InputTokenCount, streamedUsage.OutputTokenCount, streamedUsage.TotalTokenCount));
    }

    /// <summary>A generative ModelInfer request: BYTES <c>text_input</c>, greedy, <paramref name="maxTokens"/> tokens.</summary>
    public static ModelInferRequest TextRequest(string model, string prompt, int maxTokens, string id = "")
    {
        var request = new ModelInferRequest { ModelName = model, Id = id };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "text_input",
            Datatype = "BYTES",
            Shape = { 1 },
            Contents = new InferTensorContents { BytesContents = { Google.Protobuf.ByteString.CopyFromUtf8(prompt) } },
        });
        request.Parameters["max_tokens"] = new InferParameter { Int64Param = maxTokens };
        request.Parameters["temperature"] = new InferParameter { DoubleParam = 0 };
        return request;
    }

    public static string TextOutput(ModelInferResponse response)
    {
        var output = Assert.Single(response.Outputs);
        Assert.Equal("text_output", output.Name);
        return Assert.Single(output.Contents.BytesContents).ToStringUtf8();
    }

    public static bool IsFinal(ModelStreamInferResponse response) =>
        Assert.Contains("triton_final_response", (IDictionary<string, InferParameter>)response.InferResponse.Parameters).BoolParam;

    /// <summary>
    /// A greedy streamed <c>/v1/completions</c> on a connection of its own. Its response may only start with the first
    /// token, so a request that waits for a slot is still sending. Disposing it cancels the request or closes the
    /// connection without draining, as a client that goes away does.
    /// </summary>
    public sealed class CompletionStream(RunningServer server, string model, string prompt, int maxTokens) : IAsyncDisposable
    {
        private readonly HttpClient _client = new(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.Http.BaseAddress };
        private readonly CancellationTokenSource _gone = new();
        private Task<HttpResponseMessage>? _response;
        private StreamReader? _reader;
        private bool _disposed;

        /// <summary>Sends the request (and returns at once).</summary>
        public void Start()
        {
            var body = JsonSerializer.Serialize(new { model, prompt, max_tokens = maxTokens, temperature = 0, stream = true });
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(body) };
            _response = _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _gone.Token);
        }

        /// <summary>Waits for the response's status and headers (an open event stream), without reading events.</summary>
        public async Task HeadersAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var response = await _response!.WaitAsync(timeout.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        }

        /// <summary>The next event's data: one <c>data: </c> line, then a blank line.</summary>
        public async Task<string> ReadEventAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            if (_reader is null)
            {
                var response = await _response!.WaitAsync(timeout.Token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
                _reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
            }
            var line = await _reader.ReadLineAsync(timeout.Token);
            Assert.NotNull(line);
            Assert.StartsWith("data: ", line);
            Assert.Equal("", await _reader.ReadLineAsync(timeout.Token));
            return line["data: ".Length..];
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            await _gone.CancelAsync();
            if (_response is not null)
            {
                try
                {
                    (await _response).Dispose();
                }
                catch (OperationCanceledException)
                {
                    // Cancelled before the response started.
                }
            }
            _reader?.Dispose();
            _client.Dispose();
            _gone.Dispose();
        }
    }

    /// <summary>Waits (polling, up to 30 s) until <paramref name="condition"/> holds.</summary>
    public static Task WaitUntil(Func<bool> condition) => ShakespeareGenerationTests.WaitUntil(condition);

    /// <summary>One scrape of <c>/metrics</c>: every sample's name, labels and value.</summary>
    public static async Task<List<MetricSample>> ScrapeAsync(HttpClient metrics)
    {
        var samples = new List<MetricSample>();
        foreach (var line in (await metrics.GetStringAsync("/metrics")).Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var brace = line.IndexOf('{', StringComparison.Ordinal);
            var space = line.LastIndexOf(' ');
            var name = brace >= 0 ? line[..brace] : line[..space];
            var labels = brace >= 0
                ? LabelPattern().Matches(line[brace..space]).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value)
                : [];
            samples.Add(new MetricSample(name, labels, double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    /// <summary>How much the series of <paramref name="name"/> for <paramref name="model"/> (and a finish reason, if given) moved, summed over the other labels.</summary>
    public static double Delta(List<MetricSample> before, List<MetricSample> after, string name, string model, string? finishReason = null)
    {
        double Sum(List<MetricSample> samples) => samples
            .Where(s => s.Name == name && s.Labels.GetValueOrDefault("model") == model
                && (finishReason is null || s.Labels.GetValueOrDefault("finish_reason") == finishReason))
            .Sum(s => s.Value);
        return Sum(after) - Sum(before);
    }

    public sealed record MetricSample(string Name, Dictionary<string, string> Labels, double Value);

    [GeneratedRegex(@"(\w+)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPattern();
}
