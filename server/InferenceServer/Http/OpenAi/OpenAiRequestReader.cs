using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Http.OpenAi;

/// <summary>
/// A parsed OpenAI completions or chat completions request: one generation per prompt (a completions request may hold
/// several; choice i answers prompt i), all with the same fields.
/// </summary>
internal sealed record OpenAiRequest(string Model, IReadOnlyList<GenerationRequest> Generations, bool Stream, bool IncludeUsage);

/// <summary>One prompt of a completions request: text, or token ids.</summary>
internal readonly record struct OpenAiPrompt(string? Text, int[]? TokenIds);

/// <summary>
/// Parses the bodies of <c>POST /v1/completions</c> and <c>POST /v1/chat/completions</c> into a
/// <see cref="GenerationRequest"/>; a chat request's messages, tools and template variables through <see cref="ChatFields"/>.
/// Fields this server cannot honour (n &gt; 1, echo, logprobs, penalties, forced tool calls, ...) are refused with a 400
/// naming the field rather than silently ignored; unknown fields are ignored, as vLLM does.
/// </summary>
internal static class OpenAiRequestReader
{
    public static OpenAiRequest ReadCompletion(ReadOnlyMemory<byte> body, string id, int maxJsonDepth) => Read(body, id, chat: false, maxJsonDepth);

    public static OpenAiRequest ReadChat(ReadOnlyMemory<byte> body, string id, int maxJsonDepth) => Read(body, id, chat: true, maxJsonDepth);

    private static OpenAiRequest Read(ReadOnlyMemory<byte> body, string id, bool chat, int maxJsonDepth)
    {
        if (body.IsEmpty)
        {
            throw InferenceException.InvalidArgument("the request body is empty; expected a JSON object");
        }
        using var document = RestInferCodec.ParseJson(body, maxJsonDepth);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument("the request body must be a JSON object");
        }

        string? model = null;
        List<OpenAiPrompt>? prompts = null;
        var chatFields = chat ? new ChatFields() : null;
        int? maxCompletionTokens = null;
        JsonElement? streamOptions = null;
        var fields = new GenerationFields();
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            if (chatFields is not null && chatFields.TryRead(property.Name, value))
            {
                continue;
            }
            switch (property.Name)
            {
                case "model":
                    model = value.ValueKind == JsonValueKind.String ? value.GetString() : throw GenerationFields.Invalid("model", "\"model\" must be a string");
                    break;
                case "prompt" when !chat:
                    prompts = ReadPrompts(value);
                    break;
                case "max_completion_tokens" when chat:
                    maxCompletionTokens = GenerationFields.ReadMaxTokens(property.Name, value);
                    break;
                case "stream_options":
                    streamOptions = value.ValueKind == JsonValueKind.Null ? null : value;
                    break;
                case "n":
                    RequireOneOf(property.Name, value, "only n = 1 is supported", JsonValueKind.Null, 1);
                    break;
                case "best_of":
                    RequireOneOf(property.Name, value, "only best_of = 1 is supported", JsonValueKind.Null, 1);
                    break;
                case "presence_penalty" or "frequency_penalty":
                    RequireOneOf(property.Name, value, $"\"{property.Name}\" is not supported; only 0 is accepted", JsonValueKind.Null, 0);
                    break;
                case "repetition_penalty":
                    RequireOneOf(property.Name, value, $"\"{property.Name}\" is not supported; only 1 is accepted", JsonValueKind.Null, 1);
                    break;
                case "echo" when !chat:
                    RequireOneOf(property.Name, value, "\"echo\" is not supported; only false is accepted", JsonValueKind.Null, JsonValueKind.False);
                    break;
                case "logprobs":
                    RequireOneOf(property.Name, value, "\"logprobs\" is not supported; only null is accepted", JsonValueKind.Null, chat ? JsonValueKind.False : JsonValueKind.Null);
                    break;
                case "top_logprobs" or "suffix":
                    RequireOneOf(property.Name, value, $"\"{property.Name}\" is not supported", JsonValueKind.Null, JsonValueKind.Null);
                    break;
                case "logit_bias":
                    if (value.ValueKind != JsonValueKind.Null && !(value.ValueKind == JsonValueKind.Object && !value.EnumerateObject().Any()))
                    {
                        throw GenerationFields.Invalid(property.Name, "\"logit_bias\" is not supported");
                    }
                    break;
                case "functions" or "function_call":
                    if (value.ValueKind != JsonValueKind.Null && !(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 0))
                    {
                        throw GenerationFields.Invalid(property.Name, $"\"{property.Name}\" (the deprecated form of tools) is not supported; send \"tools\"");
                    }
                    break;
                case "response_format":
                    if (value.ValueKind != JsonValueKind.Null &&
                        !(value.ValueKind == JsonValueKind.Object && value.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
                    {
                        throw GenerationFields.Invalid(property.Name, "only \"response_format\": {\"type\": \"text\"} is supported");
                    }
                    break;
                default:
                    // The shared sampling fields; anything else ("user", vendor extensions) is ignored.
                    fields.TryRead(property.Name, value);
                    break;
            }
        }

        if (string.IsNullOrEmpty(model))
        {
            throw GenerationFields.Invalid("model", "the request needs \"model\", the name of a model (GET /v1/models lists them)");
        }
        if (chat && chatFields!.Messages is null)
        {
            throw GenerationFields.Invalid("messages", "the request needs \"messages\", a non-empty array of {\"role\", \"content\"}");
        }
        if (!chat && prompts is null)
        {
            throw GenerationFields.Invalid("prompt", "the request needs \"prompt\": a string, an array of strings, an array of token ids or an array of arrays of token ids");
        }
        // The newer name wins when a client sends both.
        fields.MaxTokens = maxCompletionTokens ?? fields.MaxTokens;

        var stream = fields.Stream ?? false;
        var includeUsage = false;
        if (streamOptions is { } options)
        {
            if (!stream)
            {
                throw GenerationFields.Invalid("stream_options", "\"stream_options\" is only allowed with \"stream\": true");
            }
            if (options.ValueKind != JsonValueKind.Object)
            {
                throw GenerationFields.Invalid("stream_options", "\"stream_options\" must be an object");
            }
            if (options.TryGetProperty("include_usage", out var include))
            {
                includeUsage = GenerationFields.ReadBool("stream_options.include_usage", include) ?? false;
            }
        }
        var generations = chat
            ? [fields.ToRequest(null, null, chatFields!.Messages, "chat", id, chatFields.ToOptions())]
            : prompts!.ConvertAll(p => fields.ToRequest(p.Text, p.TokenIds, null, "text_completion", id));
        return new OpenAiRequest(model, generations, stream, includeUsage);
    }

    /// <summary>
    /// The prompts, in the forms the OpenAI API and vLLM accept: a string; an array of strings (one prompt each); an
    /// array of token ids (one prompt); an array of arrays of token ids (one prompt each). A token id is a non-negative
    /// integer (whether it is inside the model's vocabulary is checked when the model is known). Anything else (an empty
    /// array or prompt, mixed elements, floats, strings among ids, deeper nesting) is InvalidArgument naming the element.
    /// </summary>
    private static List<OpenAiPrompt> ReadPrompts(JsonElement value)
    {
        const string forms = "a string, an array of strings, an array of token ids or an array of arrays of token ids";
        if (value.ValueKind == JsonValueKind.String)
        {
            return [new OpenAiPrompt(value.GetString()!, null)];
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw GenerationFields.Invalid("prompt", $"\"prompt\" must be {forms}, not {GenerationFields.Describe(value)}");
        }
        var count = value.GetArrayLength();
        if (count == 0)
        {
            throw GenerationFields.Invalid("prompt", $"\"prompt\" is an empty array; send {forms}");
        }
        var first = value[0];
        switch (first.ValueKind)
        {
            case JsonValueKind.String:
            {
                var prompts = new List<OpenAiPrompt>(count);
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    prompts.Add(item.ValueKind == JsonValueKind.String
                        ? new OpenAiPrompt(item.GetString()!, null)
                        : throw GenerationFields.Invalid("prompt", $"prompt[{i}] must be a string like prompt[0] (an array of strings is one prompt each), not {GenerationFields.Describe(item)}"));
                    i++;
                }
                return prompts;
            }
            case JsonValueKind.Number:
                return [new OpenAiPrompt(null, ReadTokenIds(value, "prompt"))];
            case JsonValueKind.Array:
            {
                var prompts = new List<OpenAiPrompt>(count);
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    prompts.Add(item.ValueKind == JsonValueKind.Array
                        ? new OpenAiPrompt(null, ReadTokenIds(item, $"prompt[{i}]"))
                        : throw GenerationFields.Invalid("prompt", $"prompt[{i}] must be an array of token ids like prompt[0] (an array of arrays is one token prompt each), not {GenerationFields.Describe(item)}"));
                    i++;
                }
                return prompts;
            }
            default:
                throw GenerationFields.Invalid("prompt", $"prompt[0] must be a string, a token id or an array of token ids, not {GenerationFields.Describe(first)}");
        }
    }

    /// <summary>
    /// An array of non-negative integers (a token prompt, or <c>/detokenize</c>'s tokens); <paramref name="path"/> names
    /// it in errors, which carry <paramref name="field"/> as their param. A token prompt (<paramref name="allowEmpty"/>
    /// false) needs at least one id.
    /// </summary>
    internal static int[] ReadTokenIds(JsonElement array, string path, string field = "prompt", bool allowEmpty = false)
    {
        var ids = new int[array.GetArrayLength()];
        if (ids.Length == 0 && !allowEmpty)
        {
            throw GenerationFields.Invalid(field, $"{path} is an empty array of token ids; a token prompt needs at least one id");
        }
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out var id) && id >= 0)
            {
                ids[i++] = id;
                continue;
            }
            throw GenerationFields.Invalid(field, item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out var large) && large > 0
                ? $"{path}[{i}] is {large}, a token id outside any vocabulary"
                : $"{path}[{i}] must be a token id (a non-negative integer), not {GenerationFields.Describe(item)}");
        }
        return ids;
    }

    /// <summary>Accepts <paramref name="value"/> only when it is one of the allowed kinds or numbers.</summary>
    private static void RequireOneOf(string name, JsonElement value, string message, params object[] allowed)
    {
        foreach (var a in allowed)
        {
            var ok = a switch
            {
                JsonValueKind kind => value.ValueKind == kind,
                int number => value.ValueKind == JsonValueKind.Number && value.GetDouble() == number,
                _ => false,
            };
            if (ok)
            {
                return;
            }
        }
        throw GenerationFields.Invalid(name, message);
    }
}
