using System.Globalization;
using System.Text.Json;

namespace InferenceServer.Mesh.Prometheus;

/// <summary>A Prometheus query failed: the server answered an error, or the result is not one number.</summary>
public sealed class PrometheusQueryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Instant queries against Prometheus' HTTP API (<c>GET /api/v1/query</c>) that answer one number: a scalar, or an
/// instant vector of at most one series (aggregate with <c>sum</c>). An empty vector or NaN is "no data".
/// </summary>
public sealed class PrometheusClient(HttpClient http)
{
    /// <summary>The query's value; null when Prometheus has no data (an empty vector, NaN, ±Inf).</summary>
    public async Task<double?> QueryScalarAsync(string query, CancellationToken cancellationToken)
    {
        var uri = "api/v1/query?query=" + Uri.EscapeDataString(query);
        string body;
        System.Net.HttpStatusCode status;
        try
        {
            using var response = await http.GetAsync(uri, cancellationToken);
            status = response.StatusCode;
            body = await response.Content.ReadAsStringAsync(cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new PrometheusQueryException($"Prometheus at {http.BaseAddress} is unreachable: {e.Message}", e);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new PrometheusQueryException($"Prometheus at {http.BaseAddress} answered {(int)status} with something other than JSON", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.TryGetProperty("status", out var state) && state.GetString() != "success")
            {
                var error = root.TryGetProperty("error", out var e) ? e.GetString() : "(no message)";
                throw new PrometheusQueryException($"Prometheus rejected the query {query}: {error}");
            }
            var data = root.GetProperty("data");
            var result = data.GetProperty("result");
            switch (data.GetProperty("resultType").GetString())
            {
                case "scalar":
                    return Value(result);
                case "vector":
                    return result.GetArrayLength() switch
                    {
                        0 => null,
                        1 => Value(result[0].GetProperty("value")),
                        var n => throw new PrometheusQueryException($"the query {query} returned {n} series; aggregate it to one (sum, histogram_quantile over sum by (le))"),
                    };
                case var other:
                    throw new PrometheusQueryException($"the query {query} returned a {other}, not a scalar or an instant vector");
            }
        }
    }

    // [ <unix time>, "<value>" ]
    private static double? Value(JsonElement pair)
    {
        var text = pair[1].GetString();
        return text is null or "NaN" or "+Inf" or "-Inf" ? null : double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
