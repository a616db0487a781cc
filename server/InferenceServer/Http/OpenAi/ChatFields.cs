using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Generation.Chat;

namespace InferenceServer.Http.OpenAi;

/// <summary>
/// The chat fields of vLLM's chat completions and <c>/tokenize</c> requests: <c>messages</c> (system, developer, user,
/// assistant and tool messages; assistant <c>tool_calls</c>), <c>tools</c>, <c>tool_choice</c>, <c>documents</c>,
/// <c>chat_template_kwargs</c>, <c>add_generation_prompt</c>, <c>continue_final_message</c> and <c>chat_template</c> (the
/// name of one of the model's templates). A wrong type or value is InvalidArgument naming the field.
/// </summary>
internal sealed class ChatFields
{
    private static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "developer", "user", "assistant", "tool" };

    private JsonElement? _templateMessages;
    private bool _hasToolCalls;
    private JsonElement? _tools;
    private JsonElement? _documents;
    private Dictionary<string, JsonElement>? _kwargs;
    private bool? _addGenerationPrompt;
    private bool? _continueFinalMessage;
    private string? _templateName;

    /// <summary>The messages as a format template sees them; null until <c>messages</c> is read.</summary>
    public List<ChatMessage>? Messages { get; private set; }

    /// <summary>Reads <paramref name="value"/> when <paramref name="name"/> is a chat field; false otherwise.</summary>
    public bool TryRead(string name, JsonElement value)
    {
        switch (name)
        {
            case "messages":
                ReadMessages(value);
                return true;
            case "tools":
                _tools = value.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.Array => CheckTools(value),
                    _ => throw GenerationFields.Invalid(name, $"\"tools\" must be an array of tools ({{\"type\": \"function\", \"function\": {{\"name\", ...}}}}), not {GenerationFields.Describe(value)}"),
                };
                return true;
            case "tool_choice":
                ReadToolChoice(value);
                return true;
            case "parallel_tool_calls":
                GenerationFields.ReadBool(name, value);
                return true;
            case "documents":
                _documents = value.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.Array => value.Clone(),
                    _ => throw GenerationFields.Invalid(name, $"\"documents\" must be an array of objects, not {GenerationFields.Describe(value)}"),
                };
                return true;
            case "chat_template_kwargs":
                if (value.ValueKind == JsonValueKind.Null)
                {
                    return true;
                }
                if (value.ValueKind != JsonValueKind.Object)
                {
                    throw GenerationFields.Invalid(name, $"\"chat_template_kwargs\" must be an object of template variables, not {GenerationFields.Describe(value)}");
                }
                _kwargs = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
                foreach (var property in value.EnumerateObject())
                {
                    _kwargs[property.Name] = property.Value.Clone();
                }
                return true;
            case "add_generation_prompt":
                _addGenerationPrompt = GenerationFields.ReadBool(name, value) ?? _addGenerationPrompt;
                return true;
            case "continue_final_message":
                _continueFinalMessage = GenerationFields.ReadBool(name, value) ?? _continueFinalMessage;
                return true;
            case "chat_template":
                _templateName = value.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.String when value.GetString()!.AsSpan().IndexOfAny("{%") < 0 => value.GetString(),
                    // vLLM takes a whole template here only when started with --trust-request-chat-template; this server never does.
                    JsonValueKind.String => throw GenerationFields.Invalid(name, "\"chat_template\" names one of the model's own chat templates; templates sent with the request are not accepted"),
                    _ => throw GenerationFields.Invalid(name, $"\"chat_template\" must be the name of one of the model's chat templates, not {GenerationFields.Describe(value)}"),
                };
                return true;
            default:
                return false;
        }
    }

    /// <summary>What the template sees beyond the messages; checks that the fields agree.</summary>
    public ChatOptions ToOptions()
    {
        var continueFinal = _continueFinalMessage ?? false;
        var addPrompt = _addGenerationPrompt ?? true;
        if (continueFinal && addPrompt)
        {
            throw GenerationFields.Invalid("continue_final_message", "\"continue_final_message\" and \"add_generation_prompt\" cannot both be true (add_generation_prompt defaults to true): set \"add_generation_prompt\": false to continue the final message");
        }
        if (continueFinal && Messages is { Count: > 0 } messages && messages[^1].Role != "assistant")
        {
            throw GenerationFields.Invalid("continue_final_message", $"\"continue_final_message\" continues the final assistant message, but the final message is the {messages[^1].Role}'s");
        }
        return new ChatOptions
        {
            Messages = _templateMessages,
            HasToolCalls = _hasToolCalls,
            Tools = _tools,
            Documents = _documents,
            TemplateKwargs = _kwargs,
            AddGenerationPrompt = addPrompt,
            ContinueFinalMessage = continueFinal,
            TemplateName = _templateName,
        };
    }

    private static JsonElement CheckTools(JsonElement tools)
    {
        var i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object
                || !tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            {
                throw GenerationFields.Invalid("tools", $"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": string, \"description\"?, \"parameters\"?}}}}");
            }
            if (tool.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() != "function")
            {
                throw GenerationFields.Invalid("tools", $"tools[{i}] has type \"{type.GetString()}\"; only \"function\" tools are supported");
            }
            i++;
        }
        return tools.Clone();
    }

    // "none" and "auto" leave the choice to the model (the tools still reach the template, as in vLLM); forcing a call
    // needs the server to parse and constrain the model's output into tool calls, which it does not do yet.
    private static void ReadToolChoice(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return;
            case JsonValueKind.String when value.GetString() is "none" or "auto":
                return;
            case JsonValueKind.String when value.GetString() == "required":
            case JsonValueKind.Object:
                throw GenerationFields.Invalid("tool_choice", "\"tool_choice\" can be \"auto\" or \"none\": this server passes tools to the model's chat template but does not yet force or parse tool calls in the model's output");
            default:
                throw GenerationFields.Invalid("tool_choice", $"\"tool_choice\" must be \"auto\", \"none\", \"required\" or a named function, not {GenerationFields.Describe(value)}");
        }
    }

    private void ReadMessages(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw GenerationFields.Invalid("messages", "\"messages\" must be a non-empty array of {\"role\", \"content\"}");
        }
        var messages = new List<ChatMessage>(value.GetArrayLength());
        var template = new JsonArray();
        var i = 0;
        foreach (var message in value.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw GenerationFields.Invalid("messages", $"messages[{i}] must be an object with \"role\" and \"content\"");
            }
            var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : null;
            if (role is null || !Roles.Contains(role))
            {
                throw GenerationFields.Invalid("messages", $"messages[{i}].role must be one of {string.Join(", ", Roles)}");
            }
            var hasCalls = message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind != JsonValueKind.Null;
            if (hasCalls && role != "assistant")
            {
                throw GenerationFields.Invalid("messages", $"messages[{i}]: only assistant messages have \"tool_calls\"");
            }
            var content = ReadContent(message.TryGetProperty("content", out var c) ? c : default, role, hasCalls, i);
            messages.Add(new ChatMessage(role, content));

            // The template's view: every field as sent, the content as one string, tool-call arguments as objects.
            var node = new JsonObject();
            foreach (var property in message.EnumerateObject())
            {
                node[property.Name] = property.Name switch
                {
                    "content" => content,
                    "tool_calls" when hasCalls => ReadToolCalls(calls, i),
                    _ => JsonNode.Parse(property.Value.GetRawText()),
                };
            }
            if (!node.ContainsKey("content"))
            {
                node["content"] = content;
            }
            _hasToolCalls |= hasCalls;
            template.Add(node);
            i++;
        }
        Messages = messages;
        _templateMessages = JsonSerializer.SerializeToElement(template);
    }

    private static JsonArray ReadToolCalls(JsonElement calls, int index)
    {
        if (calls.ValueKind != JsonValueKind.Array)
        {
            throw GenerationFields.Invalid("messages", $"messages[{index}].tool_calls must be an array");
        }
        var result = new JsonArray();
        var j = 0;
        foreach (var call in calls.EnumerateArray())
        {
            if (call.ValueKind != JsonValueKind.Object
                || !call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            {
                throw GenerationFields.Invalid("messages", $"messages[{index}].tool_calls[{j}] must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\": string, \"arguments\": string}}}}");
            }
            var node = JsonNode.Parse(call.GetRawText())!.AsObject();
            // vLLM hands templates the arguments as an object (templates write `arguments | tojson`).
            if (function.TryGetProperty("arguments", out var arguments) && arguments.ValueKind == JsonValueKind.String)
            {
                JsonNode? parsed;
                try
                {
                    parsed = JsonNode.Parse(arguments.GetString()!);
                }
                catch (JsonException)
                {
                    throw GenerationFields.Invalid("messages", $"messages[{index}].tool_calls[{j}].function.arguments is not valid JSON");
                }
                if (parsed is JsonObject)
                {
                    node["function"]!["arguments"] = parsed;
                }
            }
            result.Add(node);
            j++;
        }
        return result;
    }

    /// <summary>A string, or an array of text parts (joined with newlines, as vLLM does); null only for an assistant message (as "").</summary>
    private static string ReadContent(JsonElement content, string role, bool hasCalls, int index)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Null or JsonValueKind.Undefined when role == "assistant" || hasCalls:
                return "";
            case JsonValueKind.Array:
                var parts = new List<string>(content.GetArrayLength());
                var j = 0;
                foreach (var part in content.EnumerateArray())
                {
                    var type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                    if (type != "text")
                    {
                        throw GenerationFields.Invalid("messages", type is null
                            ? $"messages[{index}].content[{j}] must be an object with \"type\""
                            : $"messages[{index}].content[{j}]: only \"text\" parts are supported, not \"{type}\"");
                    }
                    parts.Add(part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String
                        ? text.GetString()!
                        : throw GenerationFields.Invalid("messages", $"messages[{index}].content[{j}] needs \"text\", a string"));
                    j++;
                }
                return string.Join('\n', parts);
            default:
                throw GenerationFields.Invalid("messages", $"messages[{index}].content must be a string or an array of text parts");
        }
    }
}
