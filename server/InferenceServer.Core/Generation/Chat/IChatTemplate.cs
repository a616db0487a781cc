namespace InferenceServer.Generation.Chat;

/// <summary>The prompt a chat template made, and whether the tokenizer adds its own special tokens around it.</summary>
/// <param name="Text">The prompt text.</param>
/// <param name="AddSpecialTokens">
/// Whether the tokenizer adds its BOS (or its post-processor's tokens): false for a model's Jinja template, which writes
/// the BOS itself (vLLM's default for chat), true for a format template; a request's <c>add_special_tokens</c> overrides it.
/// </param>
public readonly record struct ChatPrompt(string Text, bool AddSpecialTokens);

/// <summary>Turns a conversation into the prompt a model was trained on. Shared by every request of a model: thread-safe.</summary>
public interface IChatTemplate
{
    /// <summary>"jinja" (the model's own template) or "format" (format strings from config.yaml).</summary>
    string Kind { get; }

    /// <summary>
    /// The prompt for <paramref name="messages"/>; <paramref name="options"/> carries what a Jinja template sees beyond
    /// role and content (tools, tool calls, template variables), null for none.
    /// </summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the conversation cannot be rendered: the template
    /// raised an error (its message is passed on), asks for something the request lacks, or the request asks for something
    /// the template cannot do.</exception>
    ChatPrompt Render(IReadOnlyList<ChatMessage> messages, ChatOptions? options);
}
