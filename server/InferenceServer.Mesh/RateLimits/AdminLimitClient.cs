using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>
/// Sets a model's rate limit on one pod through the server's admin API (<c>PUT /v2/admin/limits/MODEL</c> on the
/// metrics/admin port). The PUT replaces the model's override, so the other fields of the override the pod has now
/// (<c>max_concurrency</c>, tenant limits) are read first and kept.
/// </summary>
public sealed class AdminLimitClient(HttpClient http, int port)
{
    public int Port => port;

    /// <summary>The body the PUT sends for <paramref name="share"/> over <paramref name="current"/> (the model's override now).</summary>
    public static JsonObject Body(JsonObject? current, PodShare share)
    {
        var body = (JsonObject?)current?.DeepClone() ?? new JsonObject();
        body["requests_per_second"] = share.RequestsPerSecond;
        body["burst"] = share.Burst;
        return body;
    }

    public Uri LimitsUri(string address, string? model = null) =>
        new($"http://{(address.Contains(':') ? $"[{address}]" : address)}:{port}/v2/admin/limits" + (model is null ? "" : "/" + Uri.EscapeDataString(model)));

    /// <summary>Applies <paramref name="share"/> for <paramref name="model"/> on the pod at <paramref name="address"/>;
    /// throws <see cref="HttpRequestException"/> naming the pod's answer when it refuses.</summary>
    public async Task<JsonObject> ApplyAsync(string address, string model, PodShare share, CancellationToken cancellationToken)
    {
        using (var response = await http.GetAsync(LimitsUri(address), cancellationToken))
        {
            await EnsureAsync(response, "GET", cancellationToken);
            var limits = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            var body = Body(limits?["models"]?[model] as JsonObject, share);
            using var content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var put = await http.PutAsync(LimitsUri(address, model), content, cancellationToken);
            await EnsureAsync(put, "PUT", cancellationToken);
            return body;
        }
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string method, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new HttpRequestException($"{method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}: {text.Trim()}", null, response.StatusCode);
        }
    }
}
