using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;
using NJsonSchema;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// Strict validation of Istio resources against the OpenAPI v3 schemas of Istio's CRDs (../shared/specs/istio-crds.yaml).
/// The CRD schemas are made strict the way the API server prunes: an object schema that lists <c>properties</c>, without
/// <c>x-kubernetes-preserve-unknown-fields</c> or <c>additionalProperties</c>, rejects every other field (the API server
/// would silently drop a misspelled field, which is worse: the setting is lost without an error). <c>nullable</c> adds
/// null to the type, <c>x-kubernetes-int-or-string</c> becomes integer-or-string; oneOf/anyOf/not are kept as they are.
/// The CEL rules <c>duration(self) ...</c> of <c>x-kubernetes-validations</c> are checked by parsing the value as a Go
/// duration.
/// </summary>
internal static class IstioSchema
{
    private static readonly Lazy<IReadOnlyDictionary<(string Group, string Kind, string Version), CrdVersion>> Crds = new(Load);

    public static string CrdFile => Path.Combine(Paths.Shared, "specs", "istio-crds.yaml");

    /// <summary>One served version of a CRD: its strict schema and the raw (transformed) schema for the CEL walk.</summary>
    internal sealed record CrdVersion(string Group, string Kind, string Version, bool Served, bool Deprecated, JsonSchema Spec, JsonObject RawSpec);

    public static IReadOnlyDictionary<(string Group, string Kind, string Version), CrdVersion> All => Crds.Value;

    public static bool IsIstio(Manifest manifest) => manifest.Group.EndsWith(".istio.io", StringComparison.Ordinal);

    /// <summary>Every problem of a manifest, each naming the manifest and the field path; empty when it is valid.</summary>
    public static IReadOnlyList<string> Validate(Manifest manifest)
    {
        var errors = new List<string>();
        if (!All.TryGetValue((manifest.Group, manifest.Kind, manifest.Version), out var crd))
        {
            errors.Add($"{manifest}: no CRD for {manifest.ApiVersion} {manifest.Kind} in {CrdFile}");
            return errors;
        }
        if (!crd.Served || crd.Deprecated)
        {
            errors.Add($"{manifest}: apiVersion {manifest.ApiVersion} is not served or deprecated for {manifest.Kind}");
        }
        errors.AddRange(ValidateMetadata(manifest));
        var spec = manifest.Body["spec"];
        if (spec is not JsonObject)
        {
            errors.Add($"{manifest}: spec is missing or not an object");
            return errors;
        }
        foreach (var error in crd.Spec.Validate(spec.ToJsonString()))
        {
            errors.Add($"{manifest}: spec{Describe(error)}");
        }
        CheckDurations(manifest, crd.RawSpec, spec, "spec", errors);
        return errors;
    }

    private static IEnumerable<string> ValidateMetadata(Manifest manifest)
    {
        var dns1123 = new Regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
        if (manifest.Name.Length > 63 || !dns1123.IsMatch(manifest.Name))
        {
            yield return $"{manifest}: metadata.name '{manifest.Name}' is not a DNS-1123 label";
        }
        if (manifest.Namespace is null)
        {
            yield return $"{manifest}: metadata.namespace is not set (istio/ is applied with kubectl apply -f, which would use the current namespace)";
        }
        if (manifest.Body["metadata"] is JsonObject metadata)
        {
            foreach (var key in metadata.Select(kv => kv.Key))
            {
                if (key is not ("name" or "namespace" or "labels" or "annotations"))
                {
                    yield return $"{manifest}: metadata.{key} is not expected in a shipped manifest";
                }
            }
        }
    }

    private static string Describe(NJsonSchema.Validation.ValidationError error)
    {
        var path = error.Path ?? "";
        if (path.StartsWith('#'))
        {
            path = path[1..];
        }
        path = path.Replace("/", ".", StringComparison.Ordinal);
        if (path.Length > 0 && !path.StartsWith('.'))
        {
            path = "." + path;
        }
        var detail = error is NJsonSchema.Validation.ChildSchemaValidationError child
            ? " (" + string.Join("; ", child.Errors.SelectMany(e => e.Value).Select(e => $"{e.Kind} at {e.Path}")) + ")"
            : "";
        return $"{path}: {error.Kind}{(error.Property is null ? "" : $" '{error.Property}'")}{detail}";
    }

    /// <summary>Walks value and schema together and parses every string whose schema has a <c>duration(self)</c> CEL rule.</summary>
    private static void CheckDurations(Manifest manifest, JsonObject schema, JsonNode? value, string path, List<string> errors)
    {
        if (value is null)
        {
            return;
        }
        if (value is JsonValue scalar && scalar.TryGetValue<string>(out var text) && schema["x-kubernetes-validations"] is JsonArray rules &&
            rules.Any(r => ((string?)r?["rule"])?.Contains("duration(self)", StringComparison.Ordinal) == true))
        {
            if (ParseDuration(text) is not { } duration)
            {
                errors.Add($"{manifest}: {path}: '{text}' is not a duration (Go syntax, e.g. 30s, 1m30s, 500ms)");
            }
            else if (duration < TimeSpan.FromMilliseconds(1) && duration != TimeSpan.Zero)
            {
                errors.Add($"{manifest}: {path}: '{text}' is below 1ms");
            }
        }
        if (value is JsonObject obj && schema["properties"] is JsonObject properties)
        {
            foreach (var (key, child) in obj)
            {
                if (properties[key] is JsonObject childSchema)
                {
                    CheckDurations(manifest, childSchema, child, $"{path}.{key}", errors);
                }
            }
        }
        else if (value is JsonObject map && schema["additionalProperties"] is JsonObject valueSchema)
        {
            foreach (var (key, child) in map)
            {
                CheckDurations(manifest, valueSchema, child, $"{path}.{key}", errors);
            }
        }
        else if (value is JsonArray array && schema["items"] is JsonObject itemSchema)
        {
            for (var i = 0; i < array.Count; i++)
            {
                CheckDurations(manifest, itemSchema, array[i], $"{path}[{i}]", errors);
            }
        }
    }

    private static readonly Regex DurationPart = new(@"\G([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)", RegexOptions.Compiled);

    /// <summary>A Go duration (as Kubernetes' CEL <c>duration()</c> reads it): a sequence of number+unit, or "0".</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        if (text == "0")
        {
            return TimeSpan.Zero;
        }
        var ticks = 0.0;
        var position = 0;
        foreach (Match part in DurationPart.Matches(text))
        {
            if (part.Index != position)
            {
                return null;
            }
            position += part.Length;
            var number = double.Parse(part.Groups[1].Value, CultureInfo.InvariantCulture);
            ticks += number * part.Groups[2].Value switch
            {
                "ns" => 0.01,
                "us" or "µs" => 10,
                "ms" => TimeSpan.TicksPerMillisecond,
                "s" => TimeSpan.TicksPerSecond,
                "m" => TimeSpan.TicksPerMinute,
                _ => TimeSpan.TicksPerHour,
            };
        }
        return position == text.Length && position > 0 ? TimeSpan.FromTicks((long)ticks) : null;
    }

    /// <summary>Makes a CRD's openAPIV3Schema strict and JSON-schema compatible (in place on a copy).</summary>
    public static JsonObject Strict(JsonObject schema)
    {
        var copy = (JsonObject)schema.DeepClone();
        Transform(copy);
        return copy;
    }

    private static void Transform(JsonObject schema)
    {
        if ((bool?)schema["x-kubernetes-int-or-string"] == true)
        {
            schema.Remove("type");
            schema["anyOf"] ??= new JsonArray(new JsonObject { ["type"] = "integer" }, new JsonObject { ["type"] = "string" });
        }
        if ((bool?)schema["nullable"] == true && schema["type"] is JsonValue type)
        {
            schema["type"] = new JsonArray((string)type!, "null");
        }
        schema.Remove("nullable");
        // Formats the OpenAPI generator emits for protobuf numbers (double, uint32, int64, ...) are not JSON-schema formats.
        schema.Remove("format");
        var preserve = (bool?)schema["x-kubernetes-preserve-unknown-fields"] == true;
        if (schema["properties"] is JsonObject properties)
        {
            foreach (var (_, child) in properties)
            {
                if (child is JsonObject childSchema)
                {
                    Transform(childSchema);
                }
            }
            if (!preserve && !schema.ContainsKey("additionalProperties"))
            {
                schema["additionalProperties"] = false;
            }
        }
        if (schema["additionalProperties"] is JsonObject additional)
        {
            Transform(additional);
        }
        if (schema["items"] is JsonObject items)
        {
            Transform(items);
        }
        foreach (var keyword in (string[])["oneOf", "anyOf", "allOf"])
        {
            if (schema[keyword] is JsonArray alternatives)
            {
                foreach (var alternative in alternatives.OfType<JsonObject>())
                {
                    Transform(alternative);
                }
            }
        }
        if (schema["not"] is JsonObject not)
        {
            Transform(not);
        }
    }

    private static IReadOnlyDictionary<(string, string, string), CrdVersion> Load()
    {
        var result = new Dictionary<(string, string, string), CrdVersion>();
        foreach (var crd in Manifests.Parse(File.ReadAllText(CrdFile), CrdFile).Where(m => m.Kind == "CustomResourceDefinition"))
        {
            var group = (string)crd.Spec["group"]!;
            var kind = (string)crd.Spec["names"]!["kind"]!;
            foreach (var version in crd.Spec["versions"]!.AsArray().OfType<JsonObject>())
            {
                var name = (string)version["name"]!;
                var root = version["schema"]?["openAPIV3Schema"] as JsonObject
                    ?? throw new InvalidOperationException($"{CrdFile}: {kind} {name} has no openAPIV3Schema");
                var spec = root["properties"]?["spec"] as JsonObject
                    ?? throw new InvalidOperationException($"{CrdFile}: {kind} {name} has no spec schema");
                var strict = Strict(spec);
                var schema = JsonSchema.FromJsonAsync(strict.ToJsonString()).GetAwaiter().GetResult();
                result[(group, kind, name)] = new CrdVersion(group, kind, name, (bool?)version["served"] ?? false,
                    (bool?)version["deprecated"] ?? false, schema, strict);
            }
        }
        return result;
    }
}
