using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// Envoy's v3 API as a field map (../shared/specs/envoy-v3-api.json, format in ../shared/README.md), and a validator of
/// JSON bodies (EnvoyFilter <c>patch.value</c>, <c>typed_config</c>) against its messages: Istio's CRD schema accepts
/// anything there, Envoy rejects the whole listener or cluster at runtime.
/// </summary>
internal sealed partial class EnvoyFieldMap
{
    public const string TypePrefix = "type.googleapis.com/";

    private static readonly Lazy<EnvoyFieldMap> Shared = new(() => Load(Path.Combine(Paths.Shared, "specs", "envoy-v3-api.json")));

    private readonly Dictionary<string, Dictionary<string, (string Type, string Label)>> messages;
    private readonly Dictionary<string, HashSet<string>> enums;
    // Per message: JSON name (proto name or lowerCamelCase) -> proto name.
    private readonly Dictionary<string, Dictionary<string, string>> jsonNames = new(StringComparer.Ordinal);

    private EnvoyFieldMap(
        Dictionary<string, Dictionary<string, (string, string)>> messages, Dictionary<string, HashSet<string>> enums)
    {
        this.messages = messages;
        this.enums = enums;
    }

    public static EnvoyFieldMap Instance => Shared.Value;

    public bool HasMessage(string name) => messages.ContainsKey(name);

    public static EnvoyFieldMap Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var messages = new Dictionary<string, Dictionary<string, (string, string)>>(StringComparer.Ordinal);
        foreach (var message in document.RootElement.GetProperty("messages").EnumerateObject())
        {
            var fields = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
            foreach (var field in message.Value.EnumerateObject())
            {
                fields[field.Name] = (field.Value[0].GetString()!, field.Value[1].GetString()!);
            }
            messages[message.Name] = fields;
        }
        var enums = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var e in document.RootElement.GetProperty("enums").EnumerateObject())
        {
            enums[e.Name] = e.Value.EnumerateArray().Select(v => v.GetString()!).ToHashSet(StringComparer.Ordinal);
        }
        return new EnvoyFieldMap(messages, enums);
    }

    /// <summary>lowerCamelCase JSON name of a proto field name, as protobuf's JSON mapping computes it.</summary>
    public static string JsonName(string protoName)
    {
        var result = new System.Text.StringBuilder(protoName.Length);
        var upper = false;
        foreach (var c in protoName)
        {
            if (c == '_')
            {
                upper = true;
                continue;
            }
            result.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }
        return result.ToString();
    }

    /// <summary>Validates a JSON value against a message; returns one line per problem, each with its JSON path.</summary>
    public IReadOnlyList<string> Validate(JsonNode? value, string message, string path = "$")
    {
        var errors = new List<string>();
        ValidateType(value, message, path, errors);
        return errors;
    }

    /// <summary>The message name an <c>@type</c> URL stands for, or null (with an error) when it is not a current v3 type.</summary>
    public string? ResolveTypeUrl(string? typeUrl, string path, List<string> errors)
    {
        if (typeUrl is null || !typeUrl.StartsWith(TypePrefix, StringComparison.Ordinal))
        {
            errors.Add($"{path}.@type: '{typeUrl}' is not a '{TypePrefix}<message>' type URL");
            return null;
        }
        var name = typeUrl[TypePrefix.Length..];
        if (IsTypedStruct(name))
        {
            return name;
        }
        if (IsRemovedV2(name))
        {
            errors.Add($"{path}.@type: '{name}' is an Envoy v2 type; v2 is removed (Envoy 1.18+ accepts v3 only)");
            return null;
        }
        if (!messages.ContainsKey(name))
        {
            errors.Add($"{path}.@type: '{name}' is not a message of Envoy's v3 API");
            return null;
        }
        return name;
    }

    private static bool IsTypedStruct(string name) => name is "udpa.type.v1.TypedStruct" or "xds.type.v3.TypedStruct";

    private static bool IsRemovedV2(string name) =>
        name.StartsWith("envoy.api.v2.", StringComparison.Ordinal)
        || name.StartsWith("envoy.config.filter.", StringComparison.Ordinal)
        || V2Package().IsMatch(name);

    [GeneratedRegex(@"\.v2(alpha\d*)?\.")]
    private static partial Regex V2Package();

    [GeneratedRegex(@"^-?[0-9]+(\.[0-9]{1,9})?s$")]
    private static partial Regex DurationText();

    [GeneratedRegex(@"^-?[0-9]+$")]
    private static partial Regex IntegerText();

    private void ValidateType(JsonNode? value, string type, string path, List<string> errors)
    {
        if (value is null)
        {
            // JSON null leaves a field unset.
            return;
        }
        switch (type)
        {
            case "string":
                ExpectKind(value, JsonValueKind.String, type, path, errors);
                return;
            case "bytes":
                ExpectKind(value, JsonValueKind.String, type, path, errors);
                return;
            case "bool":
                if (value is not JsonValue b || (b.GetValueKind() != JsonValueKind.True && b.GetValueKind() != JsonValueKind.False))
                {
                    errors.Add($"{path}: expected a bool, got {Describe(value)}");
                }
                return;
            case "int32" or "sint32" or "sfixed32":
                ExpectInteger(value, type, path, errors, int.MinValue, int.MaxValue);
                return;
            case "uint32" or "fixed32":
                ExpectInteger(value, type, path, errors, 0, uint.MaxValue);
                return;
            case "int64" or "sint64" or "sfixed64":
                ExpectInteger(value, type, path, errors, long.MinValue, long.MaxValue);
                return;
            case "uint64" or "fixed64":
                ExpectInteger(value, type, path, errors, 0, ulong.MaxValue);
                return;
            case "double" or "float":
                ExpectKind(value, JsonValueKind.Number, type, path, errors);
                return;
            case "google.protobuf.Duration":
                if (value is not JsonValue d || d.GetValueKind() != JsonValueKind.String || !DurationText().IsMatch((string)d!))
                {
                    errors.Add($"{path}: expected a Duration string like \"1s\" or \"0.25s\", got {Describe(value)}");
                }
                return;
            case "google.protobuf.Timestamp":
                ExpectKind(value, JsonValueKind.String, type, path, errors);
                return;
            case "google.protobuf.BoolValue":
                ValidateType(value, "bool", path, errors);
                return;
            case "google.protobuf.UInt32Value":
                ValidateType(value, "uint32", path, errors);
                return;
            case "google.protobuf.UInt64Value":
                ValidateType(value, "uint64", path, errors);
                return;
            case "google.protobuf.Int32Value":
                ValidateType(value, "int32", path, errors);
                return;
            case "google.protobuf.Int64Value":
                ValidateType(value, "int64", path, errors);
                return;
            case "google.protobuf.DoubleValue" or "google.protobuf.FloatValue":
                ValidateType(value, "double", path, errors);
                return;
            case "google.protobuf.StringValue" or "google.protobuf.BytesValue":
                ValidateType(value, "string", path, errors);
                return;
            case "google.protobuf.Struct" or "google.protobuf.Empty":
                if (value is not JsonObject)
                {
                    errors.Add($"{path}: expected an object ({type}), got {Describe(value)}");
                }
                return;
            case "google.protobuf.Value":
                return;
            case "google.protobuf.Any":
                ValidateAny(value, path, errors);
                return;
        }
        if (enums.TryGetValue(type, out var values))
        {
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.String || !values.Contains((string)v!))
            {
                errors.Add($"{path}: {Describe(value)} is not a value of enum {type} ({string.Join(", ", values.Take(12))}{(values.Count > 12 ? ", ..." : "")})");
            }
            return;
        }
        if (messages.ContainsKey(type))
        {
            ValidateMessage(value, type, path, errors);
            return;
        }
        // Types outside Envoy's own API (xds.*, udpa.*, google.api.*, google.rpc.*): not in the map, not checked.
        if (type.StartsWith("xds.", StringComparison.Ordinal) || type.StartsWith("udpa.", StringComparison.Ordinal)
            || type.StartsWith("google.", StringComparison.Ordinal))
        {
            return;
        }
        errors.Add($"{path}: type {type} is neither a message nor an enum of the field map");
    }

    private void ValidateMessage(JsonNode value, string message, string path, List<string> errors)
    {
        if (value is not JsonObject body)
        {
            errors.Add($"{path}: expected an object ({message}), got {Describe(value)}");
            return;
        }
        var fields = messages[message];
        var names = NamesOf(message);
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, child) in body)
        {
            if (!names.TryGetValue(key, out var protoName))
            {
                errors.Add($"{path}.{key}: {message} has no field '{key}'{Suggest(key, fields.Keys)}");
                continue;
            }
            if (seen.TryGetValue(protoName, out var other))
            {
                errors.Add($"{path}.{key}: field '{protoName}' is set twice (also as '{other}')");
            }
            seen[protoName] = key;
            var (type, label) = fields[protoName];
            var childPath = $"{path}.{key}";
            switch (label)
            {
                case "repeated":
                    if (child is null)
                    {
                        break;
                    }
                    if (child is not JsonArray array)
                    {
                        errors.Add($"{childPath}: expected an array (repeated {type}), got {Describe(child)}");
                        break;
                    }
                    for (var i = 0; i < array.Count; i++)
                    {
                        ValidateType(array[i], type, $"{childPath}[{i}]", errors);
                    }
                    break;
                case "map":
                    if (child is null)
                    {
                        break;
                    }
                    if (child is not JsonObject map)
                    {
                        errors.Add($"{childPath}: expected an object (map of {type}), got {Describe(child)}");
                        break;
                    }
                    foreach (var (mapKey, mapValue) in map)
                    {
                        ValidateType(mapValue, type, $"{childPath}.{mapKey}", errors);
                    }
                    break;
                default:
                    ValidateType(child, type, childPath, errors);
                    break;
            }
        }
    }

    private void ValidateAny(JsonNode value, string path, List<string> errors)
    {
        if (value is not JsonObject body)
        {
            errors.Add($"{path}: expected an object with @type (google.protobuf.Any), got {Describe(value)}");
            return;
        }
        var typeUrl = body["@type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? (string)t! : null;
        var name = ResolveTypeUrl(typeUrl, path, errors);
        if (name is null)
        {
            return;
        }
        var rest = new JsonObject(body.Where(kv => kv.Key != "@type").Select(kv => KeyValuePair.Create(kv.Key, kv.Value?.DeepClone())));
        if (IsTypedStruct(name))
        {
            foreach (var key in rest.Select(kv => kv.Key).Where(k => k is not ("type_url" or "typeUrl" or "value")))
            {
                errors.Add($"{path}.{key}: {name} has only type_url and value");
            }
            var inner = (rest["type_url"] ?? rest["typeUrl"]) is JsonValue u && u.GetValueKind() == JsonValueKind.String ? (string)u! : null;
            var innerName = ResolveTypeUrl(inner, $"{path}.type_url", errors);
            if (innerName is not null && !IsTypedStruct(innerName))
            {
                ValidateType(rest["value"] ?? new JsonObject(), innerName, $"{path}.value", errors);
            }
            return;
        }
        ValidateType(rest, name, path, errors);
    }

    private Dictionary<string, string> NamesOf(string message)
    {
        lock (jsonNames)
        {
            if (!jsonNames.TryGetValue(message, out var names))
            {
                names = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var field in messages[message].Keys)
                {
                    names[field] = field;
                    names.TryAdd(JsonName(field), field);
                }
                jsonNames[message] = names;
            }
            return names;
        }
    }

    private static void ExpectKind(JsonNode value, JsonValueKind kind, string type, string path, List<string> errors)
    {
        if (value is not JsonValue v || v.GetValueKind() != kind)
        {
            errors.Add($"{path}: expected a {type}, got {Describe(value)}");
        }
    }

    private static void ExpectInteger(JsonNode value, string type, string path, List<string> errors, decimal min, decimal max)
    {
        decimal number;
        if (value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && IntegerOf(v) is { } n)
        {
            number = n;
        }
        else if (value is JsonValue s && s.GetValueKind() == JsonValueKind.String && IntegerText().IsMatch((string)s!)
                 && decimal.TryParse((string)s!, out var parsed))
        {
            // Protobuf's JSON mapping accepts every integer as a string too (64-bit ones are written that way).
            number = parsed;
        }
        else
        {
            errors.Add($"{path}: expected an integer ({type}), got {Describe(value)}");
            return;
        }
        if (number < min || number > max)
        {
            errors.Add($"{path}: {number} is out of range for {type}");
        }
    }

    private static decimal? IntegerOf(JsonValue v)
    {
        if (v.TryGetValue<long>(out var l))
        {
            return l;
        }
        if (v.TryGetValue<ulong>(out var u))
        {
            return u;
        }
        if (v.TryGetValue<double>(out var d) && Math.Floor(d) == d && Math.Abs(d) < 1e28)
        {
            return (decimal)d;
        }
        return null;
    }

    private static string Describe(JsonNode? value) => value switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => $"{v.GetValueKind().ToString().ToLowerInvariant()} {v.ToJsonString()}",
        _ => value.ToJsonString(),
    };

    private static string Suggest(string key, IEnumerable<string> fields)
    {
        var wanted = key.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();
        var close = fields.Where(f => Distance(f.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant(), wanted) <= 2).Take(3).ToList();
        return close.Count == 0 ? "" : $" (did you mean {string.Join(" or ", close)}?)";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
        }
        return d[a.Length, b.Length];
    }
}
