using System.Globalization;
using System.Text.Json;

namespace InferenceServer.Configuration.HuggingFace;

/// <summary>
/// Reads the values a Hugging Face JSON file holds, in the shapes <c>transformers</c> writes them (a token id or a list of
/// ids, a special token as its text or as an <c>{"content": ...}</c> object, null for "none"). Every problem is a
/// <see cref="ModelConfigException"/> that names the file and the key.
/// </summary>
internal static class HuggingFaceJson
{
    private static readonly JsonDocumentOptions Options = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    /// <summary>Parses <paramref name="path"/> (shown as <paramref name="file"/>), which must hold a JSON object; null when it does not exist.</summary>
    public static JsonDocument? ReadObject(string path, string file)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelConfigException($"{file}: cannot be read: {e.Message}");
        }
        return ParseObject(bytes, file);
    }

    /// <summary>Parses <paramref name="utf8"/> as the JSON object of <paramref name="file"/>.</summary>
    public static JsonDocument ParseObject(ReadOnlyMemory<byte> utf8, string file)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, Options);
        }
        catch (JsonException e)
        {
            throw Invalid(file, e);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = document.RootElement.ValueKind;
            document.Dispose();
            throw new ModelConfigException($"{file}: expected a JSON object, not {Describe(kind)}");
        }
        return document;
    }

    /// <summary>The reason for a file that is not JSON: the file, the 1-based line and byte, and what is wrong.</summary>
    public static ModelConfigException Invalid(string file, JsonException e) =>
        new($"{file}: not valid JSON (line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}): {WithoutPosition(e.Message)}");

    /// <summary>A non-negative integer, or null when the key is missing or null.</summary>
    public static int? Int(JsonElement root, string key, string file)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) && number >= 0
            ? number
            : throw new ModelConfigException($"{file}: {key} must be a non-negative integer, not {Show(value)}");
    }

    /// <summary>A token id, which some exports write as a negative number for "none"; null when missing, null or negative.</summary>
    public static int? OptionalId(JsonElement root, string key, string file)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)
            ? number >= 0 ? number : null
            : throw new ModelConfigException($"{file}: {key} must be a token id, not {Show(value)}");
    }

    /// <summary>One id or a list of ids (<c>eos_token_id</c>), in order without repeats; null when missing, null or an empty list.</summary>
    public static List<int>? Ids(JsonElement root, string key, string file)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var ids = new List<int>();
        if (value.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in value.EnumerateArray())
            {
                Add(item);
            }
        }
        else
        {
            Add(value);
        }
        return ids.Count > 0 ? ids : null;

        void Add(JsonElement item)
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0)
            {
                throw new ModelConfigException($"{file}: {key} must be a token id or a list of token ids, not {Show(value)}");
            }
            if (!ids.Contains(id))
            {
                ids.Add(id);
            }
        }
    }

    /// <summary>True or false, or null when the key is missing or null.</summary>
    public static bool? Bool(JsonElement root, string key, string file)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelConfigException($"{file}: {key} must be true or false, not {Show(value)}"),
        };
    }

    /// <summary>
    /// A special token's text: a string, or an object with a string <c>content</c> (<c>AddedToken</c>, as older exports
    /// write it); null when the key is missing, null or empty.
    /// </summary>
    public static string? TokenText(JsonElement root, string key, string file)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind == JsonValueKind.String)
        {
            return NullIfEmpty(value.GetString());
        }
        if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
        {
            return NullIfEmpty(content.GetString());
        }
        throw new ModelConfigException($"{file}: {key} must be the token's text or an object with its \"content\", not {Show(value)}");
    }

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;

    /// <summary>A short rendering of a value for a reason: the JSON text, cut to 60 characters.</summary>
    private static string Show(JsonElement value)
    {
        var text = value.GetRawText();
        return text.Length <= 60 ? text : string.Create(CultureInfo.InvariantCulture, $"{text[..57]}...");
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    // System.Text.Json ends its messages with " LineNumber: n | BytePositionInLine: n."; the reason gives them once, 1-based.
    private static string WithoutPosition(string message)
    {
        var at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (at >= 0 ? message[..at] : message).TrimEnd();
    }
}
