using System.Threading.Channels;

namespace InferenceServer.Generation;

/// <summary>
/// A piece of generated text. <see cref="Text"/> may be empty (a token that completes no character yet, or the final
/// chunk); <see cref="CompletionTokens"/> counts every token generated so far; the last chunk has a
/// <see cref="FinishReason"/> other than <see cref="FinishReason.None"/>.
/// </summary>
public sealed record GenerationChunk(string Text, int CompletionTokens, FinishReason FinishReason);

/// <summary>Token counts of a request, as OpenAI's <c>usage</c>.</summary>
public readonly record struct GenerationUsage(int PromptTokens, int CompletionTokens)
{
    /// <summary>Prompt plus completion.</summary>
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// The output of one generation as it is made. Read <see cref="Chunks"/> to the end: it completes after the chunk that
/// carries the finish reason, or with an <see cref="Inference.InferenceException"/> when the engine fails. Cancelling
/// the token given to <see cref="ITextGenerator.GenerateAsync"/> ends the generation and frees its slot.
/// </summary>
public sealed class GenerationStream
{
    /// <summary>Creates a stream over <paramref name="chunks"/>.</summary>
    public GenerationStream(string modelName, string modelVersion, int promptTokens, ChannelReader<GenerationChunk> chunks)
    {
        ModelName = modelName;
        ModelVersion = modelVersion;
        PromptTokens = promptTokens;
        Chunks = chunks;
    }

    /// <summary>The model serving the request.</summary>
    public string ModelName { get; }

    /// <summary>The version serving the request.</summary>
    public string ModelVersion { get; }

    /// <summary>Tokens in the prompt (after the chat template).</summary>
    public int PromptTokens { get; }

    /// <summary>The generated text, chunk by chunk.</summary>
    public ChannelReader<GenerationChunk> Chunks { get; }

    /// <summary>
    /// The model the client asked for when its circuit breaker was open and this stream comes from its fallback model
    /// (<see cref="ModelName"/>); null otherwise.
    /// </summary>
    public string? FallbackFor { get; set; }

    /// <summary>"name/version" of the model serving the stream (the <c>x-served-by-model</c> header's value).</summary>
    public string ServedBy => ModelName + "/" + ModelVersion;
}

/// <summary>
/// Told, on the batcher's thread, when a generation gives its first token and how it ended: the owner of a sequence's
/// lease implements it to judge the call (the circuit breaker's outcome of a stream).
/// </summary>
public interface IGenerationObserver
{
    /// <summary>The first token was sampled.</summary>
    void FirstToken();

    /// <summary>
    /// The generation ended, after <paramref name="completionTokens"/> generated tokens: <paramref name="engineFailed"/>
    /// when the engine failed, <paramref name="cancelled"/> when the client left, the server stopped it or its deadline passed.
    /// </summary>
    void Ended(bool engineFailed, bool cancelled, int completionTokens);
}

/// <summary>A generative model as the APIs list it (<c>GET /v1/models</c>).</summary>
public sealed record GenerativeModelInfo(string Name, string Version, int ContextWindow, long CreatedUnixSeconds);

/// <summary>The text-generation entry point the protocol adapters call (implemented by the dispatcher).</summary>
public interface ITextGenerator
{
    /// <summary>
    /// Admits the request to the model's continuous batcher. Throws <see cref="Inference.InferenceException"/>:
    /// NotFound (no such model or version), InvalidArgument (not a generative model; bad prompt or parameters),
    /// ResourceExhausted with RetryAfter (the waiting queue is full), Unavailable (the model is not ready).
    /// </summary>
    ValueTask<GenerationStream> GenerateAsync(string model, string? version, GenerationRequest request, CancellationToken cancellationToken);

    /// <summary>The ready generative models.</summary>
    IReadOnlyList<GenerativeModelInfo> ListModels();

    /// <summary>
    /// The tokenizer, chat template and settings of the newest ready version of <paramref name="model"/>, to tokenize
    /// without generating (vLLM's <c>/tokenize</c> and <c>/detokenize</c>). Throws <see cref="Inference.InferenceException"/>:
    /// NotFound (no such model), Unavailable (not ready), InvalidArgument (not a generative model).
    /// </summary>
    GenerationModel Tokenization(string model);
}
