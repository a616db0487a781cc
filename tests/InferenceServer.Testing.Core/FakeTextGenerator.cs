using System.Collections.Concurrent;
using System.Threading.Channels;
using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>How a <see cref="FakeTextGenerator"/> model answers.</summary>
public sealed class FakeScript
{
    /// <summary>The chunks produced, in order (the last one normally carries the finish reason).</summary>
    public IReadOnlyList<GenerationChunk> Chunks { get; init; } = [];

    public int PromptTokens { get; init; } = 7;

    /// <summary>Waited before each chunk.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Held before the first chunk until the test completes it.</summary>
    public TaskCompletionSource? Gate { get; init; }

    /// <summary>After the scripted chunks, produce nothing until the request is cancelled (then a Cancelled chunk).</summary>
    public bool WaitForCancellation { get; init; }

    /// <summary>Refuse at admission as a full waiting queue does: ResourceExhausted with RetryAfter 1 s.</summary>
    public bool QueueFull { get; init; }

    /// <summary>Refuse at admission with the error this makes (as the dispatcher refuses a prompt it cannot take).</summary>
    public Func<InferenceException>? RefuseWith { get; init; }

    /// <summary>After the scripted chunks, fail the stream with this error (an engine failure mid-stream).</summary>
    public InferenceException? FailWith { get; init; }
}

/// <summary>One call of <see cref="FakeTextGenerator.GenerateAsync"/> as the fake saw it.</summary>
public sealed class ReceivedGeneration(string model, string? version, GenerationRequest request)
{
    public string Model { get; } = model;

    public string? Version { get; } = version;

    public GenerationRequest Request { get; } = request;

    /// <summary>Completes when the cancellation token given with the request fires.</summary>
    public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// A scripted <see cref="ITextGenerator"/>: each model name has a <see cref="FakeScript"/>. Names in
/// <see cref="TensorModels"/> exist but are not generative (InvalidArgument); any other name is NotFound. Every request is
/// recorded with whether its cancellation token fired.
/// </summary>
/// <remarks>
/// It is also the adapters' <see cref="IInferenceDispatcher"/>: a tensor request naming a scripted model becomes a
/// generation (as the real dispatcher does for a generative model); every other request goes to the real dispatcher
/// (<see cref="Inner"/>), so the adapters are tested against scripted generations.
/// </remarks>
public sealed class FakeTextGenerator : ITextGenerator, IInferenceDispatcher
{
    /// <summary>The server's own dispatcher, set when the fake is registered.</summary>
    public IInferenceDispatcher? Inner { get; set; }

    public RequestLimits Limits => Inner?.Limits ?? new RequestLimits();

    public Dispatched Dispatch(InferenceRequest request, CancellationToken cancellationToken)
    {
        if (!Models.ContainsKey(request.ModelName))
        {
            return (Inner ?? throw new InvalidOperationException("the fake has no inner dispatcher")).Dispatch(request, cancellationToken);
        }
        var version = request.ModelVersion.Length == 0 ? null : request.ModelVersion;
        return Dispatched.StartGeneration(request, generation => GenerateAsync(request.ModelName, version, generation, cancellationToken));
    }

    public async Task<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken) =>
        await Dispatch(request, cancellationToken).ResponseAsync(request.Id, cancellationToken);

    public const string Version = "1";
    public const long Created = 1_700_000_000;

    public ConcurrentDictionary<string, FakeScript> Models { get; } = new();

    public HashSet<string> TensorModels { get; } = [];

    public ConcurrentQueue<ReceivedGeneration> Received { get; } = new();

    /// <summary>The one request whose prompt, or some message, contains <paramref name="marker"/>.</summary>
    public ReceivedGeneration Single(string marker) =>
        Assert.Single(Received, r => (r.Request.Prompt ?? "").Contains(marker, StringComparison.Ordinal) ||
                                     (r.Request.Messages ?? []).Any(m => m.Content.Contains(marker, StringComparison.Ordinal)));

    /// <summary>Scripted models have no tokenizer; tokenization tests use real models.</summary>
    public GenerationModel Tokenization(string model) =>
        throw (Models.ContainsKey(model)
            ? InferenceException.InvalidArgument($"the fake model '{model}' has no tokenizer")
            : InferenceException.NotFound($"model '{model}' is not found"));

    public ValueTask<GenerationStream> GenerateAsync(string model, string? version, GenerationRequest request, CancellationToken cancellationToken)
    {
        if (TensorModels.Contains(model))
        {
            throw InferenceException.InvalidArgument($"model '{model}' is not a generative model; use /v2/models/{model}/infer");
        }
        if (!Models.TryGetValue(model, out var script))
        {
            throw InferenceException.NotFound($"unknown model '{model}'");
        }
        if (version is not null && version != Version)
        {
            throw InferenceException.NotFound($"model '{model}' has no version '{version}'");
        }
        var received = new ReceivedGeneration(model, version, request);
        Received.Enqueue(received);
        cancellationToken.Register(() => received.Cancelled.TrySetResult());
        if (script.QueueFull)
        {
            throw new InferenceException(InferenceErrorKind.ResourceExhausted, $"the waiting queue of model '{model}' is full") { RetryAfter = TimeSpan.FromSeconds(1) };
        }
        if (script.RefuseWith is { } refuse)
        {
            throw refuse();
        }
        var channel = Channel.CreateUnbounded<GenerationChunk>();
        _ = ProduceAsync(script, channel.Writer, cancellationToken);
        return ValueTask.FromResult(new GenerationStream(model, Version, script.PromptTokens, channel.Reader));
    }

    private static async Task ProduceAsync(FakeScript script, ChannelWriter<GenerationChunk> writer, CancellationToken cancellationToken)
    {
        var tokens = 0;
        try
        {
            if (script.Gate is { } gate)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }
            foreach (var chunk in script.Chunks)
            {
                if (script.Delay > TimeSpan.Zero)
                {
                    await Task.Delay(script.Delay, cancellationToken);
                }
                tokens = chunk.CompletionTokens;
                await writer.WriteAsync(chunk, cancellationToken);
            }
            if (script.FailWith is { } error)
            {
                writer.Complete(error);
                return;
            }
            if (script.WaitForCancellation)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            writer.Complete();
        }
        catch (OperationCanceledException)
        {
            // As the engine does: a last chunk saying the generation was cancelled, then the end.
            writer.TryWrite(new GenerationChunk("", tokens, FinishReason.Cancelled));
            writer.TryComplete();
        }
    }

    public IReadOnlyList<GenerativeModelInfo> ListModels() =>
        Models.Keys.Order(StringComparer.Ordinal).Select(name => new GenerativeModelInfo(name, Version, 2048, Created)).ToList();

}
