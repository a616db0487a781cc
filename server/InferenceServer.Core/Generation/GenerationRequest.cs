using InferenceServer.Generation.Chat;

namespace InferenceServer.Generation;

/// <summary>
/// One text-generation request, protocol-free: the OpenAI, Triton generate and gRPC adapters all build one of these.
/// Exactly one of <see cref="Prompt"/>, <see cref="PromptTokenIds"/> and <see cref="Messages"/> is set.
/// </summary>
public sealed class GenerationRequest
{
    /// <summary>The prompt text, used as it is.</summary>
    public string? Prompt { get; init; }

    /// <summary>
    /// The prompt as token ids, fed to the model as they are: no BOS is put before them (as vLLM does for token
    /// prompts). Each id must be inside the tokenizer's vocabulary.
    /// </summary>
    public IReadOnlyList<int>? PromptTokenIds { get; init; }

    /// <summary>A conversation, turned into the prompt by the model's chat template.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>With <see cref="Messages"/>: what the chat template sees beyond roles and contents (tools, tool calls, template variables); null for none.</summary>
    public ChatOptions? Chat { get; init; }

    /// <summary>
    /// Whether the tokenizer adds its special tokens (BOS) to the prompt text; null for the default: true for
    /// <see cref="Prompt"/>, the chat template's choice for <see cref="Messages"/> (false for a model's Jinja template,
    /// which writes them itself). Token-id prompts are used as they are.
    /// </summary>
    public bool? AddSpecialTokens { get; init; }

    /// <summary>Most tokens to generate; null for the model's default (<c>generation.default_max_tokens</c>).</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Greedy or sampled decoding.</summary>
    public SamplingParameters Sampling { get; init; } = SamplingParameters.Greedy;

    /// <summary>Up to four stop sequences; generation ends before the first one and it is not returned.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Keep generating past the model's end-of-sequence token.</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>The OpenTelemetry GenAI operation name: "chat", "text_completion" or "generate".</summary>
    public string Operation { get; init; } = "text_completion";

    /// <summary>The client's request id, for logs and traces.</summary>
    public string Id { get; init; } = "";

    /// <summary>
    /// When the generation must have ended (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>), 0 for none: from
    /// the <c>timeout</c> parameter or the gRPC deadline, else the server's default for generation. Waiting then, it
    /// leaves the queue; running, its stream ends with a deadline error (504 / DEADLINE_EXCEEDED) and its KV memory is freed.
    /// </summary>
    public long Deadline { get; set; }

    /// <summary>Sets <see cref="Deadline"/> from a <c>timeout</c> in microseconds counted from <paramref name="received"/> and a deadline already known (0: none); the earlier wins.</summary>
    public void SetDeadline(long received, long? timeoutMicroseconds, long deadline) =>
        Deadline = Inference.InferenceRequest.DeadlineAfter(deadline, received, timeoutMicroseconds ?? 0);

    /// <summary>The tenant (from the configured tenant header), for per-tenant rate limits; null or empty: the shared default bucket.</summary>
    public string? Tenant { get; set; }
}

/// <summary>Why a generation ended, as OpenAI names it.</summary>
public enum FinishReason
{
    /// <summary>Not finished.</summary>
    None,

    /// <summary>The model's end-of-sequence token or a stop sequence ("stop").</summary>
    Stop,

    /// <summary>max_tokens reached ("length").</summary>
    Length,

    /// <summary>The client went away or its deadline passed; nothing more is sent.</summary>
    Cancelled,
}

/// <summary>The wire names of <see cref="FinishReason"/>.</summary>
public static class FinishReasons
{
    /// <summary>"stop", "length", "cancelled" or null while running.</summary>
    public static string? Name(this FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Cancelled => "cancelled",
        _ => null,
    };
}
