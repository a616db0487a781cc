using System.Text.Json;
using Google.Protobuf;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using InferenceServer.Repository;

namespace InferenceServer.Http;

/// <summary>The Open Inference Protocol v2 REST API with Triton's configuration, statistics and repository extensions. A thin adapter: decoding and encoding here, everything else in the core.</summary>
internal static class RestEndpoints
{
    public static IEndpointRouteBuilder MapOpenInferenceRest(this IEndpointRouteBuilder app)
    {
        var v2 = app.MapGroup("/v2");
        v2.MapGet("/health/live", context => WriteObjectAsync(context, 200, w => w.WriteBoolean("live", true)));
        // Startup probe: 200 once the initial load phase is over, whatever each model's outcome (readiness reports those).
        v2.MapGet("/health/startup", context =>
        {
            var started = Repository(context).StartupComplete;
            return WriteObjectAsync(context, started ? 200 : 503, w => w.WriteBoolean("started", started));
        });
        v2.MapGet("/health/ready", context =>
        {
            var ready = context.RequestServices.GetRequiredService<Lifecycle.ServerLifecycle>().IsReady;
            return WriteObjectAsync(context, ready ? 200 : 503, w => w.WriteBoolean("ready", ready));
        });
        v2.MapGet("", context => WriteMessageAsync(context, ProtocolMessages.ServerMetadata()));
        v2.MapGet("/models/stats", context => WriteMessageAsync(context, ProtocolMessages.Statistics(Repository(context), "", "")));
        MapModelRoute(v2, "GET", "", ModelMetadataAsync);
        MapModelRoute(v2, "GET", "/ready", ModelReadyAsync);
        MapModelRoute(v2, "GET", "/config", ModelConfigAsync);
        MapModelRoute(v2, "GET", "/stats", ModelStatisticsAsync);
        MapModelRoute(v2, "POST", "/infer", InferAsync);
        v2.MapPost("/repository/index", RepositoryIndexAsync);
        v2.MapPost("/repository/models/{name}/load", RepositoryLoadAsync);
        v2.MapPost("/repository/models/{name}/unload", RepositoryUnloadAsync);
        return app;
    }

    private static void MapModelRoute(RouteGroupBuilder group, string method, string suffix, RequestDelegate handler)
    {
        group.MapMethods("/models/{name}" + suffix, [method], handler);
        group.MapMethods("/models/{name}/versions/{version}" + suffix, [method], handler);
    }

    private static async Task InferAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        var dispatcher = context.RequestServices.GetRequiredService<IInferenceDispatcher>();
        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        var encoding = new RestOutputEncoding();
        using var request = RestInferCodec.ReadRequest(name, version, body.Memory, context.Request.Headers[RestInferCodec.HeaderLengthHeader].FirstOrDefault(), encoding, dispatcher.Limits);
        request.Tenant = Protocol.RequestMetadata.TenantOf(context);
        // A generative model takes text_input and answers text_output, so KServe v2 clients can call it too.
        using var response = await dispatcher.InferAsync(request, context.RequestAborted);
        Observability.AccessLogEntry.SetModel(context, response.ModelName, response.ModelVersion);
        await RestInferCodec.WriteResponseAsync(context.Response, response, encoding, context.RequestAborted);
    }

    private static Task ModelMetadataAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        var repository = Repository(context);
        return WriteMessageAsync(context, ProtocolMessages.ModelMetadata(repository, repository.GetReady(name, version)));
    }

    private static Task ModelReadyAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        var ready = context.RequestServices.GetRequiredService<Lifecycle.ServerLifecycle>().IsModelReady(name, version);
        return WriteObjectAsync(context, ready ? 200 : 503, w =>
        {
            w.WriteString("name", name);
            w.WriteBoolean("ready", ready);
        });
    }

    private static Task ModelConfigAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        var loaded = Repository(context).GetReady(name, version);
        var config = loaded.Config!;
        // Triton's configuration, plus where each value came from (a configuration file, the model itself, a default).
        return WriteJsonAsync(context, 200, w => ProtoJson.Write(w, ProtocolMessages.ModelConfig(config), extra: w =>
        {
            if (loaded.Generation is { } generation)
            {
                GenerationConfigJson.Write(w, generation);
            }
            w.WriteStartObject("provenance");
            foreach (var (key, source) in config.Provenance)
            {
                w.WriteString(key, source);
            }
            w.WriteEndObject();
        }));
    }

    private static Task ModelStatisticsAsync(HttpContext context)
    {
        var (name, version) = Route(context);
        return WriteMessageAsync(context, ProtocolMessages.Statistics(Repository(context), name, version));
    }

    private static async Task RepositoryIndexAsync(HttpContext context)
    {
        var readyOnly = false;
        using (var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted))
        {
            if (body.Length > 0)
            {
                using var document = JsonDocument.Parse(body.Memory);
                if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("ready", out var ready))
                {
                    readyOnly = ready.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw InferenceException.InvalidArgument("\"ready\" must be true or false"),
                    };
                }
            }
        }
        var index = ProtocolMessages.Index(Repository(context), readyOnly);
        await WriteJsonAsync(context, 200, w =>
        {
            w.WriteStartArray();
            foreach (var model in index.Models)
            {
                w.WriteStartObject();
                w.WriteString("name", model.Name);
                if (model.Version.Length > 0)
                {
                    w.WriteString("version", model.Version);
                }
                if (model.State.Length > 0)
                {
                    w.WriteString("state", model.State);
                }
                if (model.Reason.Length > 0)
                {
                    w.WriteString("reason", model.Reason);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
    }

    private static async Task RepositoryLoadAsync(HttpContext context)
    {
        var name = (string)context.GetRouteValue("name")!;
        await ReadRepositoryParametersAsync(context);
        var repository = Repository(context);
        await repository.LoadAsync(name, context.RequestAborted);
        if (repository.ReadyVersions(name).Count == 0)
        {
            var reasons = string.Join("; ", repository.Versions(name).Select(v => v.Reason).Distinct());
            throw InferenceException.Unavailable($"model '{name}' failed to load: {reasons}");
        }
        await WriteJsonAsync(context, 200, w => { w.WriteStartObject(); w.WriteEndObject(); });
    }

    private static async Task RepositoryUnloadAsync(HttpContext context)
    {
        var name = (string)context.GetRouteValue("name")!;
        await ReadRepositoryParametersAsync(context);
        await Repository(context).UnloadAsync(name, context.RequestAborted);
        await WriteJsonAsync(context, 200, w => { w.WriteStartObject(); w.WriteEndObject(); });
    }

    /// <summary>Load and unload accept an optional JSON body with "parameters"; it must at least be well formed.</summary>
    private static async Task ReadRepositoryParametersAsync(HttpContext context)
    {
        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        if (body.Length == 0)
        {
            return;
        }
        using var document = JsonDocument.Parse(body.Memory);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument("the request body must be a JSON object");
        }
        if (document.RootElement.TryGetProperty("parameters", out var parameters))
        {
            var values = new Dictionary<string, object>();
            RestInferCodec.ReadParameters(parameters, values, "request");
            RepositoryParameters.Check(values.Keys);
        }
    }

    private static (string Name, string Version) Route(HttpContext context) =>
        ((string)context.GetRouteValue("name")!, context.GetRouteValue("version") as string ?? "");

    private static ModelRepository Repository(HttpContext context) => context.RequestServices.GetRequiredService<ModelRepository>();

    private static Task WriteMessageAsync(HttpContext context, IMessage message) =>
        WriteJsonAsync(context, 200, w => ProtoJson.Write(w, message));

    private static Task WriteObjectAsync(HttpContext context, int status, Action<Utf8JsonWriter> properties) =>
        WriteJsonAsync(context, status, w =>
        {
            w.WriteStartObject();
            properties(w);
            w.WriteEndObject();
        });

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        using var buffer = new PooledBufferWriter();
        using (var writer = new Utf8JsonWriter(buffer, JsonWriting.Options))
        {
            write(writer);
        }
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }
}
