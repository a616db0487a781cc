using System.Text.Json;

namespace InferenceServer.Generation.Chat;

/// <summary>
/// What a chat request gives its model's chat template beyond the messages' roles and contents, with vLLM's names and
/// defaults: the messages as the template sees them, <c>tools</c>, <c>documents</c>, <c>chat_template_kwargs</c>,
/// <c>add_generation_prompt</c>, <c>continue_final_message</c> and the named template.
/// </summary>
public sealed class ChatOptions
{
    /// <summary>The error for both <see cref="ContinueFinalMessage"/> and <see cref="AddGenerationPrompt"/>.</summary>
    public const string BothContinueAndGenerationPrompt =
        "\"continue_final_message\" and \"add_generation_prompt\" cannot both be true: continue the final message, or cue a new assistant message";

    /// <summary>
    /// The messages as a Jinja template sees them: a JSON array of objects with every field the client sent, a content of
    /// text parts joined into one string, and each tool call's <c>function.arguments</c> given as a JSON string parsed into
    /// an object (as vLLM does, so that templates can write <c>arguments | tojson</c>).
    /// </summary>
    public JsonElement? Messages { get; init; }

    /// <summary>True when some assistant message has <c>tool_calls</c>.</summary>
    public bool HasToolCalls { get; init; }

    /// <summary>The request's <c>tools</c> (OpenAI function schemas), passed to the template as they are; null for none.</summary>
    public JsonElement? Tools { get; init; }

    /// <summary>The request's <c>documents</c> (retrieval-augmented generation), passed to the template as they are.</summary>
    public JsonElement? Documents { get; init; }

    /// <summary>Extra template variables (<c>chat_template_kwargs</c>, e.g. Qwen 3's <c>enable_thinking</c>).</summary>
    public IReadOnlyDictionary<string, JsonElement>? TemplateKwargs { get; init; }

    /// <summary>Cue the assistant's reply (default true, as in vLLM).</summary>
    public bool AddGenerationPrompt { get; init; } = true;

    /// <summary>Leave the final (assistant) message open so that the model continues it; excludes <see cref="AddGenerationPrompt"/>.</summary>
    public bool ContinueFinalMessage { get; init; }

    /// <summary>Which of the model's named templates to use (e.g. "tool_use"); null: "tool_use" with tools when the model has it, else "default".</summary>
    public string? TemplateName { get; init; }
}
