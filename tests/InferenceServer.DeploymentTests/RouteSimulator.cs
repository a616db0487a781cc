using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace InferenceServer.Tests.Deployment;

/// <summary>A request as a VirtualService sees it: where it enters (a gateway or <c>mesh</c>), the port, path and headers.</summary>
internal sealed record SimRequest(string Path, string Gateway = "inference/inference-gateway", int Port = 443, IReadOnlyDictionary<string, string>? Headers = null)
{
    public override string ToString() =>
        $"{Path} via {Gateway}:{Port}" + (Headers is { Count: > 0 } ? " with " + string.Join(", ", Headers.Select(h => $"{h.Key}: {h.Value}")) : "");
}

/// <summary>
/// Envoy's route selection for one VirtualService, the parts we use: the first http route with a match that fits wins
/// (a route without match fits everything); within a match, uri (exact, prefix, regex: RE2 full match), headers
/// (exact, prefix, regex), port and gateways must all fit; the matches of one route are ORed.
/// </summary>
internal static class RouteSimulator
{
    public static JsonObject? Route(Manifest virtualService, SimRequest request)
    {
        foreach (var route in virtualService.Spec["http"]!.AsArray().OfType<JsonObject>())
        {
            if (route["match"] is not JsonArray matches || matches.Count == 0 || matches.OfType<JsonObject>().Any(m => Fits(virtualService, m, request)))
            {
                return route;
            }
        }
        return null;
    }

    public static string Name(JsonObject? route) => (string?)route?["name"] ?? "(no route: 404)";

    /// <summary>The route's destinations as (host, subset, port, weight).</summary>
    public static IReadOnlyList<(string Host, string? Subset, int? Port, int Weight)> Destinations(JsonObject route)
    {
        var destinations = route["route"]!.AsArray().OfType<JsonObject>().ToList();
        return destinations.Select(d => (
            (string)d["destination"]!["host"]!,
            (string?)d["destination"]!["subset"],
            (int?)L(d["destination"]!["port"]?["number"]),
            (int?)L(d["weight"]) ?? (destinations.Count == 1 ? 100 : 0))).ToList();
    }

    /// <summary>An integer field (the YAML loader stores integers as long).</summary>
    public static long? L(JsonNode? node) => node?.GetValue<long>();

    private static bool Fits(Manifest virtualService, JsonObject match, SimRequest request)
    {
        if (match["gateways"] is JsonArray gateways && !gateways.Select(g => Qualify(virtualService, (string)g!)).Contains(Qualify(virtualService, request.Gateway)))
        {
            return false;
        }
        if (match["port"] is JsonValue port && L(port) != request.Port)
        {
            return false;
        }
        if (match["uri"] is JsonObject uri && !Fits(uri, request.Path))
        {
            return false;
        }
        if (match["headers"] is JsonObject headers)
        {
            foreach (var (name, condition) in headers)
            {
                var value = request.Headers?.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
                if (value is null || !Fits((JsonObject)condition!, value))
                {
                    return false;
                }
            }
        }
        var known = new HashSet<string>(["gateways", "port", "uri", "headers", "name"]);
        var unknown = match.Select(kv => kv.Key).Where(k => !known.Contains(k)).ToList();
        return unknown.Count == 0 ? true : throw new NotSupportedException($"{virtualService}: the simulator does not model match fields {string.Join(", ", unknown)}");
    }

    private static bool Fits(JsonObject condition, string value) =>
        condition switch
        {
            _ when condition["exact"] is JsonValue exact => (string)exact! == value,
            _ when condition["prefix"] is JsonValue prefix => value.StartsWith((string)prefix!, StringComparison.Ordinal),
            _ when condition["regex"] is JsonValue regex => Regex.IsMatch(value, "^(?:" + (string)regex! + ")$"),
            _ => throw new NotSupportedException($"string match {condition.ToJsonString()}"),
        };

    private static string Qualify(Manifest virtualService, string gateway) =>
        gateway == "mesh" || gateway.Contains('/') ? gateway : $"{virtualService.Namespace}/{gateway}";
}
