using System.Text.Json;

namespace InferenceServer.Configuration.HuggingFace;

/// <summary>
/// What the configuration needs from a tokenizer.json without building the tokenizer (Generation's tokenizer factory
/// does that when the model loads): its added tokens by id, and the special token its post-processor puts before every
/// sequence. Only those two top-level keys are parsed; the rest (the vocabulary, megabytes of it) is skipped.
/// </summary>
internal sealed record TokenizerJsonSummary(IReadOnlyDictionary<int, string> AddedTokens, string? TemplateBos)
{
    private static readonly JsonReaderOptions Options = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    /// <summary>Reads <paramref name="path"/> (shown as <paramref name="file"/>); throws <see cref="ModelConfigException"/> when it is not a JSON object.</summary>
    public static TokenizerJsonSummary Read(string path, string file)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelConfigException($"{file}: cannot be read: {e.Message}");
        }
        try
        {
            return Scan(bytes, file);
        }
        catch (JsonException e)
        {
            throw HuggingFaceJson.Invalid(file, e);
        }
    }

    private static TokenizerJsonSummary Scan(ReadOnlySpan<byte> utf8, string file)
    {
        var reader = new Utf8JsonReader(utf8, Options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new ModelConfigException($"{file}: expected a JSON object");
        }
        var added = new Dictionary<int, string>();
        string? templateBos = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = reader.GetString();
            if (key is "added_tokens" or "post_processor")
            {
                reader.Read();
                using var value = JsonDocument.ParseValue(ref reader);
                if (key == "added_tokens")
                {
                    ReadAddedTokens(value.RootElement, added);
                }
                else
                {
                    templateBos = LeadingSpecialToken(value.RootElement);
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        // The rest of the document is read too, so a truncated file is reported here rather than half-used.
        while (reader.Read())
        {
        }
        return new TokenizerJsonSummary(added, templateBos);
    }

    private static void ReadAddedTokens(JsonElement array, Dictionary<int, string> added)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            return;
        }
        foreach (var token in array.EnumerateArray())
        {
            if (token.ValueKind == JsonValueKind.Object
                && token.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out var value)
                && token.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                added[value] = content.GetString()!;
            }
        }
    }

    /// <summary>
    /// The special token a <c>TemplateProcessing</c> post-processor (alone or in a <c>Sequence</c>) puts first in a single
    /// sequence (<c>"single": [{"SpecialToken": {"id": "&lt;s&gt;"}}, {"Sequence": ...}]</c>), or null.
    /// </summary>
    private static string? LeadingSpecialToken(JsonElement processor)
    {
        if (processor.ValueKind != JsonValueKind.Object || !processor.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        if (type.ValueEquals("Sequence") && processor.TryGetProperty("processors", out var processors) && processors.ValueKind == JsonValueKind.Array)
        {
            foreach (var step in processors.EnumerateArray())
            {
                if (LeadingSpecialToken(step) is { } token)
                {
                    return token;
                }
            }
            return null;
        }
        if (!type.ValueEquals("TemplateProcessing") || !processor.TryGetProperty("single", out var single)
            || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0)
        {
            return null;
        }
        var first = single[0];
        return first.ValueKind == JsonValueKind.Object && first.TryGetProperty("SpecialToken", out var special) && special.ValueKind == JsonValueKind.Object
            && special.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() is { Length: > 0 } text
            ? text
            : null;
    }
}
