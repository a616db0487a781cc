using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Generation.Templates;
using InferenceServer.Inference;

namespace InferenceServer.Generation.Chat;

/// <summary>
/// A model's own Jinja chat template (or several named ones), rendered as <c>transformers</c>' <c>apply_chat_template</c>
/// renders it: variables <c>messages</c>, <c>tools</c>, <c>documents</c>, <c>add_generation_prompt</c>, the tokenizer's
/// special tokens (<c>bos_token</c>, <c>eos_token</c>, ...) and the request's <c>chat_template_kwargs</c>; then, with
/// <c>continue_final_message</c>, the text is cut after the final message's content. The prompt is tokenized without the
/// tokenizer's own special tokens (the template writes them), as vLLM does.
/// </summary>
public sealed class JinjaChatTemplate : IChatTemplate
{
    /// <summary>The name <c>transformers</c> gives the main template when a model has several.</summary>
    public const string DefaultName = "default";

    /// <summary>The named template <c>transformers</c> picks when the request has tools.</summary>
    public const string ToolUseName = "tool_use";

    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal) { "messages", "tools", "documents", "add_generation_prompt" };

    private readonly Dictionary<string, JinjaTemplate> _templates;
    private readonly Dictionary<string, object?> _specialTokens;
    private readonly TimeProvider _clock;

    /// <summary>Parses the templates (name → source); <paramref name="specialTokens"/> are the template variables such as <c>bos_token</c>.</summary>
    /// <exception cref="ArgumentException">A template does not parse; the message names it and the line.</exception>
    public JinjaChatTemplate(IReadOnlyList<KeyValuePair<string, string>> templates, IReadOnlyDictionary<string, object?> specialTokens, string source, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(templates);
        ArgumentNullException.ThrowIfNull(specialTokens);
        if (templates.Count == 0)
        {
            throw new ArgumentException("no chat template given");
        }
        _templates = new Dictionary<string, JinjaTemplate>(StringComparer.Ordinal);
        var names = new List<string>(templates.Count);
        foreach (var (name, text) in templates)
        {
            try
            {
                _templates[name] = JinjaTemplate.Parse(text);
            }
            catch (JinjaException e)
            {
                throw new ArgumentException($"chat template '{name}' in {source} cannot be parsed: {e.Message}");
            }
            names.Add(name);
        }
        Names = names;
        _specialTokens = new Dictionary<string, object?>(specialTokens, StringComparer.Ordinal);
        Source = source;
        _clock = clock ?? TimeProvider.System;
    }

    /// <inheritdoc/>
    public string Kind => "jinja";

    /// <summary>Where the templates were found (a file of the model directory).</summary>
    public string Source { get; }

    /// <summary>The templates' names in the order found ("default" for a model's single template).</summary>
    public IReadOnlyList<string> Names { get; }

    /// <inheritdoc/>
    public ChatPrompt Render(IReadOnlyList<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw InferenceException.InvalidArgument("messages must contain at least one message");
        }
        options ??= new ChatOptions();
        if (options.ContinueFinalMessage && options.AddGenerationPrompt)
        {
            throw InferenceException.InvalidArgument(ChatOptions.BothContinueAndGenerationPrompt);
        }
        var hasTools = options.Tools is { ValueKind: JsonValueKind.Array } t && t.GetArrayLength() > 0;
        var template = Select(options.TemplateName, hasTools);

        var variables = new Dictionary<string, object?>(_specialTokens, StringComparer.Ordinal);
        if (options.TemplateKwargs is { } kwargs)
        {
            foreach (var (name, value) in kwargs)
            {
                if (Reserved.Contains(name))
                {
                    throw InferenceException.InvalidArgument($"chat_template_kwargs cannot set '{name}': it is given by the request itself");
                }
                variables[name] = JinjaValue.FromJson(value);
            }
        }
        variables["messages"] = JinjaValue.FromJson(options.Messages ?? PlainMessages(messages));
        variables["tools"] = hasTools ? JinjaValue.FromJson(options.Tools!.Value) : null;
        variables["documents"] = options.Documents is { ValueKind: not JsonValueKind.Null } documents ? JinjaValue.FromJson(documents) : null;
        variables["add_generation_prompt"] = options.AddGenerationPrompt;

        string text;
        try
        {
            text = template.Render(variables, _clock);
        }
        catch (JinjaRaisedException e)
        {
            // raise_exception("...") in the template: the model's own words on what the conversation lacks.
            throw InferenceException.InvalidArgument(e.Message);
        }
        catch (JinjaException e)
        {
            throw InferenceException.InvalidArgument($"the model's chat template cannot render these messages: {e.Message}");
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or InvalidOperationException or FormatException or OverflowException or KeyNotFoundException or IndexOutOfRangeException)
        {
            // A case the engine does not cover, reached through the request's data: still the request's answer, a 400.
            throw InferenceException.InvalidArgument($"the model's chat template cannot render these messages: {e.Message}");
        }
        if (options.ContinueFinalMessage)
        {
            text = CutAfterFinalMessage(text, messages[^1].Content);
        }
        return new ChatPrompt(text, AddSpecialTokens: false);
    }

    // transformers' rule: cut after the last occurrence of the final message's content, keeping its trailing spaces
    // when the template kept them.
    private static string CutAfterFinalMessage(string rendered, string final)
    {
        var stripped = final.Trim();
        var at = rendered.LastIndexOf(stripped, StringComparison.Ordinal);
        if (at < 0)
        {
            throw InferenceException.InvalidArgument(
                "continue_final_message is set but the final message does not appear in the chat after applying the chat template (the template changes it)");
        }
        // The template kept the message as it is (no leading spaces, trailing ones intact): cut after all of it.
        if (final.Length == final.TrimStart().Length && at + final.Length <= rendered.Length && string.CompareOrdinal(rendered, at, final, 0, final.Length) == 0)
        {
            return rendered[..(at + final.Length)];
        }
        return rendered[..(at + stripped.Length)];
    }

    private JinjaTemplate Select(string? name, bool hasTools)
    {
        if (name is not null)
        {
            return _templates.TryGetValue(name, out var named)
                ? named
                : throw InferenceException.InvalidArgument($"this model has no chat template named '{name}' (it has {string.Join(", ", Names.Select(n => $"'{n}'"))})");
        }
        if (_templates.Count == 1)
        {
            return _templates[Names[0]];
        }
        if (hasTools && _templates.TryGetValue(ToolUseName, out var toolUse))
        {
            return toolUse;
        }
        return _templates.TryGetValue(DefaultName, out var byDefault)
            ? byDefault
            : throw InferenceException.InvalidArgument(
                $"this model has several chat templates and none named 'default': name one with \"chat_template\" ({string.Join(", ", Names.Select(n => $"'{n}'"))})");
    }

    private static JsonElement PlainMessages(IReadOnlyList<ChatMessage> messages)
    {
        var array = new JsonArray();
        foreach (var message in messages)
        {
            array.Add(new JsonObject { ["role"] = message.Role, ["content"] = message.Content });
        }
        return JsonSerializer.SerializeToElement(array);
    }
}
