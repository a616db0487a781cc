using System.Text;
using InferenceServer.Configuration;
using InferenceServer.Inference;

namespace InferenceServer.Generation.Chat;

/// <summary>
/// A chat template written as per-role format strings in config.yaml (<c>generation.chat_template</c>): each message
/// becomes its role's format with <c>{content}</c> and <c>{role}</c> filled in. It cannot show tools or tool calls to the
/// model, so a request with either is refused; the prompt gets the tokenizer's special tokens (BOS) like a plain prompt.
/// </summary>
public sealed class FormatChatTemplate : IChatTemplate
{
    private readonly Segment[]? _system;
    private readonly Segment[]? _user;
    private readonly Segment[]? _assistant;
    private readonly Segment[]? _default;
    private readonly string _prefix;
    private readonly string _generationPrompt;

    /// <summary>
    /// Builds a template from per-role formats (null: fall back to <paramref name="defaultFormat"/>; a null default rejects unlisted roles).
    /// </summary>
    /// <exception cref="ArgumentException">A format has unbalanced braces or an unknown placeholder, or no format is given at all.</exception>
    public FormatChatTemplate(string? system, string? user, string? assistant, string? defaultFormat, string? prefix = null, string? generationPrompt = null)
    {
        if (system is null && user is null && assistant is null && defaultFormat is null)
        {
            throw new ArgumentException("the chat template defines no message format");
        }
        _default = defaultFormat is null ? null : Parse(defaultFormat, "default");
        _system = system is null ? _default : Parse(system, "system");
        _user = user is null ? _default : Parse(user, "user");
        _assistant = assistant is null ? _default : Parse(assistant, "assistant");
        _prefix = Literal(prefix, "prefix");
        _generationPrompt = Literal(generationPrompt, "generation_prompt");
    }

    /// <summary>Each message's content on its own line, without role names (suits small character-level models); no generation prompt.</summary>
    public static FormatChatTemplate Default { get; } = new(null, null, null, "{content}\n");

    /// <summary>The template <paramref name="spec"/> describes, or <see cref="Default"/> when it is null.</summary>
    /// <exception cref="ArgumentException">The spec is malformed.</exception>
    public static FormatChatTemplate FromSpec(ChatTemplateSpec? spec) =>
        spec is null ? Default : new FormatChatTemplate(spec.System, spec.User, spec.Assistant, spec.Default, spec.Prefix, spec.GenerationPrompt);

    /// <inheritdoc/>
    public string Kind => "format";

    /// <inheritdoc/>
    public ChatPrompt Render(IReadOnlyList<ChatMessage> messages, ChatOptions? options)
    {
        if (options is not null)
        {
            if (options.Tools is { ValueKind: System.Text.Json.JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            {
                throw InferenceException.InvalidArgument("\"tools\" needs the model's own Jinja chat template; this model's chat template is a set of format strings (generation.chat_template), which cannot show tools");
            }
            if (options.HasToolCalls)
            {
                throw InferenceException.InvalidArgument("assistant \"tool_calls\" need the model's own Jinja chat template; this model's chat template is a set of format strings (generation.chat_template)");
            }
            if (options.TemplateName is { } name)
            {
                throw InferenceException.InvalidArgument($"this model has no named chat templates (asked for '{name}')");
            }
            if (options.ContinueFinalMessage && options.AddGenerationPrompt)
            {
                throw InferenceException.InvalidArgument(ChatOptions.BothContinueAndGenerationPrompt);
            }
        }
        return new ChatPrompt(Render(messages), AddSpecialTokens: true);
    }

    /// <summary>The prompt for <paramref name="messages"/>.</summary>
    /// <exception cref="InferenceException">InvalidArgument when there are no messages or a role has no format.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw InferenceException.InvalidArgument("messages must contain at least one message");
        }
        var text = new StringBuilder(_prefix);
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw InferenceException.InvalidArgument($"messages[{i}] is null");
            if (message.Role is null)
            {
                throw InferenceException.InvalidArgument($"messages[{i}] has no role");
            }
            var format = message.Role switch
            {
                "system" => _system,
                "user" => _user,
                "assistant" => _assistant,
                _ => _default,
            } ?? throw InferenceException.InvalidArgument($"messages[{i}] has role '{message.Role}', which this model's chat template does not support");
            foreach (var segment in format)
            {
                text.Append(segment.Kind switch
                {
                    SegmentKind.Content => message.Content,
                    SegmentKind.Role => message.Role,
                    _ => segment.Text,
                });
            }
        }
        // A trailing assistant message is a reply to continue, so no new reply is cued.
        if (messages[^1].Role != "assistant")
        {
            text.Append(_generationPrompt);
        }
        return text.ToString();
    }

    private enum SegmentKind
    {
        Text,
        Content,
        Role,
    }

    private readonly record struct Segment(SegmentKind Kind, string Text);

    private static string Literal(string? format, string name)
    {
        if (format is null)
        {
            return "";
        }
        var segments = Parse(format, name);
        if (Array.Exists(segments, s => s.Kind != SegmentKind.Text))
        {
            throw new ArgumentException($"chat template {name} cannot use placeholders (write {{{{ and }}}} for literal braces)");
        }
        return string.Concat(segments.Select(s => s.Text));
    }

    // Compiled once at load so rendering is a walk over literal and placeholder segments.
    private static Segment[] Parse(string format, string name)
    {
        var segments = new List<Segment>();
        var literal = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{')
            {
                literal.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < format.Length && format[i + 1] == '}')
            {
                literal.Append('}');
                i++;
            }
            else if (c == '{')
            {
                var end = format.IndexOfAny(['{', '}'], i + 1);
                if (end < 0 || format[end] == '{')
                {
                    throw new ArgumentException($"chat template {name} has an unclosed '{{' at position {i} (write {{{{ for a literal brace)");
                }
                var placeholder = format[(i + 1)..end];
                var kind = placeholder switch
                {
                    "content" => SegmentKind.Content,
                    "role" => SegmentKind.Role,
                    _ => throw new ArgumentException($"chat template {name} has unknown placeholder '{{{placeholder}}}' (expected {{content}} or {{role}})"),
                };
                if (literal.Length > 0)
                {
                    segments.Add(new Segment(SegmentKind.Text, literal.ToString()));
                    literal.Clear();
                }
                segments.Add(new Segment(kind, ""));
                i = end;
            }
            else if (c == '}')
            {
                throw new ArgumentException($"chat template {name} has an unmatched '}}' at position {i} (write }}}} for a literal brace)");
            }
            else
            {
                literal.Append(c);
            }
        }
        if (literal.Length > 0)
        {
            segments.Add(new Segment(SegmentKind.Text, literal.ToString()));
        }
        return [.. segments];
    }
}
