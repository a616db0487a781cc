using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using InferenceServer.Tests.Deployment;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Mesh;

/// <summary>One request the fake API server received.</summary>
internal sealed record ApiRequest(string Method, string Path, string Query, string? ContentType, string Body)
{
    public override string ToString() => $"{Method} {Path}{Query} ({ContentType}) {Body}";
}

/// <summary>
/// The few Kubernetes API endpoints meshctl and the server's in-pod option use, on loopback, over an in-memory store:
/// get, list (with labelSelector) and watch of any namespaced resource, core (<c>/api/v1</c>) or grouped
/// (<c>/apis/GROUP/VERSION</c>); PATCH with <c>application/apply-patch+yaml</c> (server-side apply: objects merge, lists
/// are atomic, which is how Istio's CRDs declare theirs), <c>application/merge-patch+json</c> and PUT with a
/// resourceVersion check (409 on a stale one). Every request is recorded, so tests assert the exact patches and their
/// order. Not a general API server: no field ownership or conflicts beyond what <see cref="FailNext"/> injects.
/// </summary>
internal sealed class FakeKubernetesApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly object _gate = new();
    private readonly Dictionary<string, JsonObject> _objects = new(StringComparer.Ordinal);
    private readonly List<Watcher> _watchers = [];
    private readonly ConcurrentQueue<(string Method, HttpStatusCode Status)> _failures = new();
    private readonly List<ApiRequest> _requests = [];
    private long _resourceVersion = 1000;

    private FakeKubernetesApi(WebApplication app) => _app = app;

    /// <summary>The base address to give KubernetesClientConfiguration.Host.</summary>
    public string Url { get; private set; } = "";

    /// <summary>Every request so far, in order (watch requests included).</summary>
    public IReadOnlyList<ApiRequest> Requests
    {
        get
        {
            lock (_gate)
            {
                return _requests.ToList();
            }
        }
    }

    /// <summary>The requests that changed something (PATCH, PUT, POST, DELETE), in order.</summary>
    public IReadOnlyList<ApiRequest> Writes => Requests.Where(r => r.Method != "GET").ToList();

    public static async Task<FakeKubernetesApi> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var fake = new FakeKubernetesApi(app);
        app.Run(fake.HandleAsync);
        await app.StartAsync();
        fake.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return fake;
    }

    /// <summary>The path of a namespaced object, e.g. <c>Path("networking.istio.io/v1", "inference", "virtualservices", "x")</c>
    /// or <c>Path("v1", "inference", "pods", "p")</c>.</summary>
    public static string PathOf(string apiVersion, string ns, string plural, string? name = null)
    {
        var prefix = apiVersion.Contains('/') ? $"/apis/{apiVersion}" : $"/api/{apiVersion}";
        return $"{prefix}/namespaces/{ns}/{plural}" + (name is null ? "" : "/" + name);
    }

    /// <summary>Creates or replaces an object (as the cluster would after some other client's write); watchers see it.</summary>
    public void Put(string apiVersion, string plural, JsonObject obj)
    {
        var ns = (string)obj["metadata"]!["namespace"]!;
        var name = (string)obj["metadata"]!["name"]!;
        lock (_gate)
        {
            var path = PathOf(apiVersion, ns, plural, name);
            var type = _objects.ContainsKey(path) ? "MODIFIED" : "ADDED";
            Store(path, (JsonObject)obj.DeepClone(), type);
        }
    }

    /// <summary>Deletes an object; watchers see DELETED.</summary>
    public void Delete(string apiVersion, string ns, string plural, string name)
    {
        lock (_gate)
        {
            var path = PathOf(apiVersion, ns, plural, name);
            if (_objects.Remove(path, out var old))
            {
                old["metadata"]!["resourceVersion"] = (++_resourceVersion).ToString(System.Globalization.CultureInfo.InvariantCulture);
                Notify(path, "DELETED", old);
            }
        }
    }

    /// <summary>A copy of a stored object, or null.</summary>
    public JsonObject? Get(string apiVersion, string ns, string plural, string name)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(PathOf(apiVersion, ns, plural, name), out var obj) ? (JsonObject)obj.DeepClone() : null;
        }
    }

    /// <summary>The next write request with <paramref name="method"/> fails with <paramref name="status"/> (e.g. 409 Conflict).</summary>
    public void FailNext(string method, HttpStatusCode status) => _failures.Enqueue((method, status));

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Events.Writer.TryComplete();
            }
        }
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var body = await new StreamReader(request.Body, Encoding.UTF8).ReadToEndAsync(context.RequestAborted);
        var record = new ApiRequest(request.Method, request.Path.Value ?? "", request.QueryString.Value ?? "", request.ContentType, body);
        lock (_gate)
        {
            _requests.Add(record);
        }
        if (request.Method != "GET" && _failures.TryPeek(out var failure) && failure.Method == request.Method && _failures.TryDequeue(out failure))
        {
            await WriteStatusAsync(context, failure.Status, "injected failure");
            return;
        }
        var path = record.Path.TrimEnd('/');
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        // api/v1/namespaces/NS/PLURAL[/NAME] or apis/G/V/namespaces/NS/PLURAL[/NAME]
        var nsIndex = Array.IndexOf(segments, "namespaces");
        if (nsIndex < 0 || segments.Length < nsIndex + 3)
        {
            await WriteStatusAsync(context, HttpStatusCode.NotFound, $"the fake API server does not serve {path}");
            return;
        }
        var isCollection = segments.Length == nsIndex + 3;
        switch (request.Method)
        {
            case "GET" when isCollection && IsTrue(request.Query["watch"]):
                await WatchAsync(context, path, request.Query["labelSelector"]);
                return;
            case "GET" when isCollection:
                await WriteJsonAsync(context, HttpStatusCode.OK, List(path, request.Query["labelSelector"]));
                return;
            case "GET":
                var found = Get(path);
                await (found is null ? WriteStatusAsync(context, HttpStatusCode.NotFound, $"{path} not found") : WriteJsonAsync(context, HttpStatusCode.OK, found));
                return;
            case "PATCH" when !isCollection:
                await PatchAsync(context, path, record);
                return;
            case "PUT" when !isCollection:
                await ReplaceAsync(context, path, body);
                return;
            default:
                await WriteStatusAsync(context, HttpStatusCode.MethodNotAllowed, $"{request.Method} {path} is not served by the fake");
                return;
        }
    }

    private JsonObject? Get(string path)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(path, out var obj) ? (JsonObject)obj.DeepClone() : null;
        }
    }

    private JsonObject List(string collection, string? labelSelector)
    {
        lock (_gate)
        {
            var items = new JsonArray(Matching(collection, labelSelector).Select(o => (JsonNode)o.DeepClone()).ToArray());
            return new JsonObject
            {
                ["kind"] = "List",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                ["items"] = items,
            };
        }
    }

    private IEnumerable<JsonObject> Matching(string collection, string? labelSelector) =>
        _objects.Where(kv => kv.Key.StartsWith(collection + "/", StringComparison.Ordinal) && kv.Key.LastIndexOf('/') == collection.Length)
            .Select(kv => kv.Value)
            .Where(o => Selects(labelSelector, o["metadata"]?["labels"] as JsonObject));

    /// <summary>Equality selectors only (<c>a=b,c=d</c>), which is all the callers use.</summary>
    private static bool Selects(string? selector, JsonObject? labels)
    {
        if (string.IsNullOrEmpty(selector))
        {
            return true;
        }
        foreach (var term in selector.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = term.Split('=', 2);
            var key = parts[0].TrimEnd('=');
            var value = parts.Length > 1 ? parts[1].TrimStart('=') : null;
            var actual = (string?)labels?[key];
            if (actual is null || (value is not null && actual != value))
            {
                return false;
            }
        }
        return true;
    }

    private async Task WatchAsync(HttpContext context, string collection, string? labelSelector)
    {
        var watcher = new Watcher(collection, labelSelector);
        lock (_gate)
        {
            // A watch without a resourceVersion starts with a synthetic ADDED for every existing object.
            if (string.IsNullOrEmpty(context.Request.Query["resourceVersion"]))
            {
                foreach (var obj in Matching(collection, labelSelector))
                {
                    watcher.Events.Writer.TryWrite(Event("ADDED", obj));
                }
            }
            _watchers.Add(watcher);
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await context.Response.StartAsync(context.RequestAborted);
        try
        {
            await foreach (var line in watcher.Events.Reader.ReadAllAsync(context.RequestAborted))
            {
                await context.Response.WriteAsync(line + "\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            lock (_gate)
            {
                _watchers.Remove(watcher);
            }
        }
    }

    private async Task PatchAsync(HttpContext context, string path, ApiRequest record)
    {
        var type = record.ContentType?.Split(';')[0].Trim();
        JsonNode? patch;
        try
        {
            patch = type == "application/apply-patch+yaml" ? Manifests.ParseValue(record.Body, "apply patch") : JsonNode.Parse(record.Body);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            await WriteStatusAsync(context, HttpStatusCode.BadRequest, "unparsable patch: " + e.Message);
            return;
        }
        if (patch is not JsonObject patchObject)
        {
            await WriteStatusAsync(context, HttpStatusCode.BadRequest, "the patch is not an object");
            return;
        }
        JsonObject result;
        lock (_gate)
        {
            var exists = _objects.TryGetValue(path, out var current);
            switch (type)
            {
                case "application/apply-patch+yaml":
                    if (string.IsNullOrEmpty(context.Request.Query["fieldManager"]))
                    {
                        result = null!;
                        break;
                    }
                    result = exists ? current!.DeepClone().AsObject() : new JsonObject();
                    Apply(result, patchObject);
                    break;
                case "application/merge-patch+json" when exists:
                    result = current!.DeepClone().AsObject();
                    MergePatch(result, patchObject);
                    break;
                default:
                    result = null!;
                    break;
            }
            if (result is not null)
            {
                Store(path, result, exists ? "MODIFIED" : "ADDED");
                result = (JsonObject)result.DeepClone();
            }
        }
        if (result is null)
        {
            await WriteStatusAsync(context, type == "application/apply-patch+yaml" ? HttpStatusCode.UnprocessableEntity : HttpStatusCode.UnsupportedMediaType,
                type == "application/apply-patch+yaml" ? "fieldManager is required for apply patch" : $"patch type {type} not served (or the object does not exist)");
            return;
        }
        await WriteJsonAsync(context, HttpStatusCode.OK, result);
    }

    private async Task ReplaceAsync(HttpContext context, string path, string body)
    {
        if (JsonNode.Parse(body) is not JsonObject replacement)
        {
            await WriteStatusAsync(context, HttpStatusCode.BadRequest, "not an object");
            return;
        }
        lock (_gate)
        {
            var exists = _objects.TryGetValue(path, out var current);
            var expected = (string?)replacement["metadata"]?["resourceVersion"];
            if (exists && expected is not null && expected != (string?)current!["metadata"]?["resourceVersion"])
            {
                replacement = null!;
            }
            else
            {
                Store(path, replacement, exists ? "MODIFIED" : "ADDED");
                replacement = (JsonObject)replacement.DeepClone();
            }
        }
        await (replacement is null
            ? WriteStatusAsync(context, HttpStatusCode.Conflict, "the object has been modified; please apply your changes to the latest version and try again")
            : WriteJsonAsync(context, HttpStatusCode.OK, replacement));
    }

    /// <summary>Server-side apply as far as the callers need it: maps merge field by field, everything else (lists
    /// included: Istio's CRDs declare none as map-lists) is replaced.</summary>
    private static void Apply(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch)
        {
            if (value is JsonObject child && target[key] is JsonObject existing)
            {
                Apply(existing, child);
            }
            else
            {
                target[key] = value?.DeepClone();
            }
        }
    }

    /// <summary>RFC 7386 JSON merge patch.</summary>
    private static void MergePatch(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch)
        {
            if (value is null)
            {
                target.Remove(key);
            }
            else if (value is JsonObject child && target[key] is JsonObject existing)
            {
                MergePatch(existing, child);
            }
            else
            {
                target[key] = value.DeepClone();
            }
        }
    }

    // Under _gate.
    private void Store(string path, JsonObject obj, string eventType)
    {
        var metadata = obj["metadata"] as JsonObject ?? new JsonObject();
        obj["metadata"] = metadata;
        metadata["resourceVersion"] = (++_resourceVersion).ToString(System.Globalization.CultureInfo.InvariantCulture);
        _objects[path] = obj;
        Notify(path, eventType, obj);
    }

    // Under _gate.
    private void Notify(string path, string eventType, JsonObject obj)
    {
        var collection = path[..path.LastIndexOf('/')];
        foreach (var watcher in _watchers)
        {
            if (watcher.Collection == collection && Selects(watcher.LabelSelector, obj["metadata"]?["labels"] as JsonObject))
            {
                watcher.Events.Writer.TryWrite(Event(eventType, obj));
            }
        }
    }

    private static string Event(string type, JsonObject obj) =>
        new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString();

    private static bool IsTrue(string? value) => value is "true" or "1";

    private static async Task WriteJsonAsync(HttpContext context, HttpStatusCode status, JsonNode body)
    {
        context.Response.StatusCode = (int)status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }

    private static Task WriteStatusAsync(HttpContext context, HttpStatusCode status, string message) =>
        WriteJsonAsync(context, status, new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = status.ToString(),
            ["code"] = (int)status,
        });

    private sealed record Watcher(string Collection, string? LabelSelector)
    {
        public Channel<string> Events { get; } = Channel.CreateUnbounded<string>();
    }
}
