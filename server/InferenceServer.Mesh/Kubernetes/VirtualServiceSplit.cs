using System.Text.Json.Nodes;

namespace InferenceServer.Mesh.Kubernetes;

/// <summary>
/// The weighted split between two subsets of one host in a VirtualService. A "split route" is an HTTP route whose
/// destinations are exactly the two subsets of the host (the shipped <c>*-split</c> routes); header routes (canary
/// opt-in, version pins) send to one subset and are left alone. Every split route carries the same weights: the
/// canary is one decision, whatever the protocol.
/// </summary>
public sealed record VirtualServiceSplit(string Host, string Stable, string Canary)
{
    /// <summary>The split routes' weights (stable, canary); throws <see cref="InvalidOperationException"/> when the
    /// VirtualService has no split route for the host or its split routes disagree.</summary>
    public (int Stable, int Canary) Read(JsonObject virtualService)
    {
        (int, int)? found = null;
        foreach (var (name, stable, canary) in SplitRoutes(virtualService))
        {
            var weights = (Weight(stable), Weight(canary));
            if (found is { } first && first != weights)
            {
                throw new InvalidOperationException(
                    $"the split routes of {Host} disagree: {first.Item1}/{first.Item2} and {weights.Item1}/{weights.Item2} (route {name})");
            }
            found = weights;
        }
        return found ?? throw new InvalidOperationException($"no HTTP route splits {Host} between subsets {Stable} and {Canary}");
    }

    /// <summary>A copy of the VirtualService with every split route at <paramref name="canaryWeight"/> percent for the
    /// canary and the rest for the stable subset.</summary>
    public JsonObject With(JsonObject virtualService, int canaryWeight)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(canaryWeight);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(canaryWeight, 100);
        var copy = (JsonObject)virtualService.DeepClone();
        var count = 0;
        foreach (var (_, stable, canary) in SplitRoutes(copy))
        {
            stable["weight"] = 100 - canaryWeight;
            canary["weight"] = canaryWeight;
            count++;
        }
        return count > 0 ? copy : throw new InvalidOperationException($"no HTTP route splits {Host} between subsets {Stable} and {Canary}");
    }

    // Whatever numeric type the JSON was built with (a parsed document, YAML, a client's object).
    private static int Weight(JsonObject destination) =>
        destination["weight"] is { } weight ? int.Parse(weight.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) : 0;

    private IEnumerable<(string Name, JsonObject Stable, JsonObject Canary)> SplitRoutes(JsonObject virtualService)
    {
        if (virtualService["spec"]?["http"] is not JsonArray routes)
        {
            yield break;
        }
        foreach (var route in routes.OfType<JsonObject>())
        {
            if (route["route"] is not JsonArray destinations || destinations.Count != 2)
            {
                continue;
            }
            JsonObject? stable = null, canary = null;
            foreach (var destination in destinations.OfType<JsonObject>())
            {
                if ((string?)destination["destination"]?["host"] != Host)
                {
                    continue;
                }
                var subset = (string?)destination["destination"]?["subset"];
                if (subset == Stable)
                {
                    stable = destination;
                }
                else if (subset == Canary)
                {
                    canary = destination;
                }
            }
            if (stable is not null && canary is not null)
            {
                yield return ((string?)route["name"] ?? "(unnamed)", stable, canary);
            }
        }
    }
}
