using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;

namespace InferenceServer.Http;

/// <summary>
/// The sampling and stopping fields that the OpenAI API and Triton's generate extension share, under the same names
/// (<c>max_tokens</c>, <c>temperature</c>, <c>top_p</c>, <c>top_k</c>, <c>seed</c>, <c>stop</c>, <c>ignore_eos</c>,
/// <c>stream</c>), and vLLM's <c>add_special_tokens</c>. A JSON <c>null</c> means "not given". A wrong type or value is InvalidArgument naming the field.
/// </summary>
internal sealed class GenerationFields
{
    /// <summary>The key under which an error carries the offending field's name (OpenAI's <c>param</c>).</summary>
    public const string ParamKey = "inference.param";

    /// <summary>The key under which an error carries a machine-readable code (OpenAI's <c>code</c>), such as <c>context_length_exceeded</c>.</summary>
    public const string CodeKey = "inference.code";

    /// <summary>OpenAI's and the contract's limit on stop sequences.</summary>
    public const int MaxStopSequences = 4;

    public int? MaxTokens { get; set; }

    public float? Temperature { get; private set; }

    public float? TopP { get; private set; }

    public int? TopK { get; private set; }

    public ulong? Seed { get; private set; }

    public IReadOnlyList<string>? Stop { get; private set; }

    public bool? IgnoreEos { get; private set; }

    public bool? Stream { get; private set; }

    public bool? AddSpecialTokens { get; private set; }

    /// <summary>An InvalidArgument error that names <paramref name="field"/>.</summary>
    public static InferenceException Invalid(string field, string message)
    {
        var e = InferenceException.InvalidArgument(message);
        e.Data[ParamKey] = field;
        return e;
    }

    /// <summary>Reads <paramref name="value"/> when <paramref name="name"/> is one of the shared fields; false otherwise.</summary>
    public bool TryRead(string name, JsonElement value)
    {
        switch (name)
        {
            case "max_tokens":
                MaxTokens = ReadMaxTokens(name, value) ?? MaxTokens;
                return true;
            case "temperature":
                Temperature = ReadFloat(name, value) ?? Temperature;
                return true;
            case "top_p":
                TopP = ReadFloat(name, value) ?? TopP;
                return true;
            case "top_k":
                TopK = ReadTopK(name, value) ?? TopK;
                return true;
            case "seed":
                Seed = ReadSeed(name, value) ?? Seed;
                return true;
            case "stop":
                Stop = ReadStop(name, value) ?? Stop;
                return true;
            case "ignore_eos":
                IgnoreEos = ReadBool(name, value) ?? IgnoreEos;
                return true;
            case "stream":
                Stream = ReadBool(name, value) ?? Stream;
                return true;
            case "add_special_tokens":
                AddSpecialTokens = ReadBool(name, value) ?? AddSpecialTokens;
                return true;
            default:
                return false;
        }
    }

    /// <summary>The sampling parameters, validated; an absent field takes OpenAI's default (temperature 1, top_p 1, top_k off).</summary>
    public SamplingParameters Sampling()
    {
        var sampling = new SamplingParameters { Temperature = Temperature ?? 1f, TopK = TopK ?? 0, TopP = TopP ?? 1f, Seed = Seed };
        sampling.Validate();
        return sampling;
    }

    /// <summary>Builds the request (exactly one of <paramref name="prompt"/>, <paramref name="promptTokenIds"/> and <paramref name="messages"/>).</summary>
    public GenerationRequest ToRequest(
        string? prompt, IReadOnlyList<int>? promptTokenIds, IReadOnlyList<ChatMessage>? messages, string operation, string id, ChatOptions? chat = null) => new()
    {
        Prompt = prompt,
        PromptTokenIds = promptTokenIds,
        Messages = messages,
        Chat = chat,
        AddSpecialTokens = AddSpecialTokens,
        MaxTokens = MaxTokens,
        Sampling = Sampling(),
        Stop = Stop ?? [],
        IgnoreEos = IgnoreEos ?? false,
        Operation = operation,
        Id = id,
    };

    public static int? ReadMaxTokens(string name, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number when value.TryGetInt64(out var n) && n >= 1 => (int)Math.Min(n, int.MaxValue),
        _ => throw Invalid(name, $"\"{name}\" must be a positive integer, not {Describe(value)}"),
    };

    public static bool? ReadBool(string name, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Invalid(name, $"\"{name}\" must be true or false, not {Describe(value)}"),
    };

    private static float? ReadFloat(string name, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number => (float)value.GetDouble(),
        _ => throw Invalid(name, $"\"{name}\" must be a number, not {Describe(value)}"),
    };

    private static int? ReadTopK(string name, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        // vLLM spells "off" as -1; the contract as 0.
        JsonValueKind.Number when value.TryGetInt32(out var k) && k >= -1 => Math.Max(k, 0),
        _ => throw Invalid(name, $"\"{name}\" must be an integer, -1 or 0 for off, not {Describe(value)}"),
    };

    private static ulong? ReadSeed(string name, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind == JsonValueKind.Number)
        {
            if (value.TryGetUInt64(out var u))
            {
                return u;
            }
            if (value.TryGetInt64(out var s))
            {
                // OpenAI's seed is a signed 64-bit integer; its bits are the seed.
                return unchecked((ulong)s);
            }
        }
        throw Invalid(name, $"\"{name}\" must be an integer, not {Describe(value)}");
    }

    private static IReadOnlyList<string>? ReadStop(string name, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return [CheckStop(name, value.GetString()!)];
            case JsonValueKind.Array:
                if (value.GetArrayLength() > MaxStopSequences)
                {
                    throw Invalid(name, $"\"{name}\" has {value.GetArrayLength()} sequences; at most {MaxStopSequences} are allowed");
                }
                var stops = new List<string>(value.GetArrayLength());
                foreach (var item in value.EnumerateArray())
                {
                    stops.Add(item.ValueKind == JsonValueKind.String
                        ? CheckStop(name, item.GetString()!)
                        : throw Invalid(name, $"\"{name}\" must hold strings, not {Describe(item)}"));
                }
                return stops;
            default:
                throw Invalid(name, $"\"{name}\" must be a string or an array of strings, not {Describe(value)}");
        }
    }

    private static string CheckStop(string name, string stop) =>
        stop.Length > 0 ? stop : throw Invalid(name, $"\"{name}\" sequences must not be empty");

    /// <summary>A short description of a JSON value for error messages.</summary>
    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
