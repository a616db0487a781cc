using System.Text.Json;
using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;

namespace InferenceServer.Generation.Chat;

/// <summary>
/// Finds a model's Jinja chat templates the way <c>transformers</c> finds them beside the tokenizer:
/// <c>chat_template.jinja</c>, else <c>chat_template.json</c> (<c>{"chat_template": "…"}</c>), else
/// <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of <c>{"name", "template"}</c>); and named
/// templates in <c>additional_chat_templates/NAME.jinja</c>. The template variables for the special tokens
/// (<c>bos_token</c>, <c>eos_token</c>, <c>unk_token</c>, <c>pad_token</c>, <c>sep_token</c>, <c>cls_token</c>,
/// <c>mask_token</c>, <c>additional_special_tokens</c>) come from <c>tokenizer_config.json</c>.
/// </summary>
public static class ChatTemplateFiles
{
    /// <summary>The template file <c>transformers</c> saves since 4.49.</summary>
    public const string JinjaFileName = "chat_template.jinja";

    /// <summary>The template file processors saved before that.</summary>
    public const string JsonFileName = "chat_template.json";

    /// <summary>The folder of further named templates.</summary>
    public const string AdditionalFolder = "additional_chat_templates";

    private const string TokenizerConfigFileName = "tokenizer_config.json";

    private static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    /// <summary>
    /// The chat template in <paramref name="directory"/>, or null when it has none. <paramref name="describe"/> turns a
    /// file's path into the name used in messages (relative to the model directory).
    /// </summary>
    /// <exception cref="ArgumentException">A file is unreadable or malformed, or a template does not parse; the message names the file.</exception>
    public static JinjaChatTemplate? Find(string directory, Func<string, string> describe, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(describe);
        var templates = new List<KeyValuePair<string, string>>();
        string? source = null;
        var config = ReadObject(Path.Combine(directory, TokenizerConfigFileName), describe);
        var jinja = Path.Combine(directory, JinjaFileName);
        var json = Path.Combine(directory, JsonFileName);
        if (File.Exists(jinja))
        {
            templates.Add(new(JinjaChatTemplate.DefaultName, ReadText(jinja, describe)));
            source = describe(jinja);
        }
        else if (File.Exists(json))
        {
            using var saved = ReadObject(json, describe)!;
            templates.AddRange(Templates(saved.RootElement, describe(json)));
            source = describe(json);
        }
        else if (config is not null)
        {
            templates.AddRange(Templates(config.RootElement, describe(Path.Combine(directory, TokenizerConfigFileName))));
            source = templates.Count > 0 ? describe(Path.Combine(directory, TokenizerConfigFileName)) : null;
        }
        var additional = Path.Combine(directory, AdditionalFolder);
        if (Directory.Exists(additional))
        {
            foreach (var file in Directory.EnumerateFiles(additional, "*.jinja").Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileNameWithoutExtension(file);
                templates.RemoveAll(t => t.Key == name);
                templates.Add(new(name, ReadText(file, describe)));
                source = source is null ? describe(additional) : $"{source} + {describe(additional)}";
            }
        }
        using (config)
        {
            return templates.Count == 0 ? null : new JinjaChatTemplate(templates, SpecialTokens(config?.RootElement), source!, clock);
        }
    }

    /// <summary>The special-token variables <c>transformers</c> passes to a template: each one the config sets, as its text.</summary>
    private static Dictionary<string, object?> SpecialTokens(JsonElement? config)
    {
        var tokens = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (config is not { ValueKind: JsonValueKind.Object } root)
        {
            return tokens;
        }
        foreach (var key in SpecialTokenKeys)
        {
            if (root.TryGetProperty(key, out var value) && TokenText(value) is { } text)
            {
                tokens[key] = text;
            }
        }
        if (root.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
        {
            var list = new List<object?>();
            foreach (var item in extra.EnumerateArray())
            {
                if (TokenText(item) is { } text)
                {
                    list.Add(text);
                }
            }
            tokens["additional_special_tokens"] = list;
        }
        return tokens;
    }

    // A token is written as its text or as an AddedToken object {"content": ...}.
    private static string? TokenText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Object when value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String => content.GetString(),
        _ => null,
    };

    private static IEnumerable<KeyValuePair<string, string>> Templates(JsonElement root, string file)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("chat_template", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            yield break;
        }
        if (value.ValueKind == JsonValueKind.String)
        {
            yield return new(JinjaChatTemplate.DefaultName, value.GetString()!);
            yield break;
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new ArgumentException($"{file}: chat_template must be a string or a list of {{\"name\", \"template\"}}, not {value.ValueKind.ToString().ToLowerInvariant()}");
        }
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object
                || !item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                || !item.TryGetProperty("template", out var template) || template.ValueKind != JsonValueKind.String)
            {
                throw new ArgumentException($"{file}: chat_template[{i}] must be {{\"name\": string, \"template\": string}}");
            }
            yield return new(name.GetString()!, template.GetString()!);
            i++;
        }
    }

    private static string ReadText(string path, Func<string, string> describe)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot read {describe(path)}: {e.Message}");
        }
    }

    // The Hugging Face files' own reader; its reason (file, line, what is wrong) becomes the ArgumentException the model's load reports.
    private static JsonDocument? ReadObject(string path, Func<string, string> describe)
    {
        try
        {
            return HuggingFaceJson.ReadObject(path, describe(path));
        }
        catch (ModelConfigException e)
        {
            throw new ArgumentException(e.Message);
        }
    }
}
