using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.Http.OpenAi;

/// <summary>
/// The OpenAI-compatible API on the REST port, at <c>/v1</c> and at KServe's <c>/openai/v1</c>: models, completions and
/// chat completions, whole or streamed as server-sent events. Errors use OpenAI's shape with the server's status codes.
/// </summary>
internal static partial class OpenAiEndpoints
{
    public static readonly string[] Prefixes = ["/v1", "/openai/v1"];

    public static IEndpointRouteBuilder MapOpenAi(this IEndpointRouteBuilder app)
    {
        foreach (var prefix in Prefixes)
        {
            var group = app.MapGroup(prefix);
            group.MapGet("/models", Guard(ListModelsAsync));
            group.MapGet("/models/{id}", Guard(GetModelAsync));
            group.MapPost("/completions", Guard(context => CompleteAsync(context, chat: false)));
            group.MapPost("/chat/completions", Guard(context => CompleteAsync(context, chat: true)));
        }
        return app;
    }

    private static Task ListModelsAsync(HttpContext context) =>
        JsonResponse.WriteAsync(context, 200, Generator(context).ListModels(), OpenAiResponseWriter.ModelList);

    private static Task GetModelAsync(HttpContext context)
    {
        var id = (string)context.GetRouteValue("id")!;
        var model = Generator(context).ListModels().FirstOrDefault(m => m.Name == id)
            ?? throw NotFound(id);
        return JsonResponse.WriteAsync(context, 200, model, OpenAiResponseWriter.Model);
    }

    private static async Task CompleteAsync(HttpContext context, bool chat)
    {
        var cancellationToken = context.RequestAborted;
        var id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        OpenAiRequest request;
        using (var body = await RequestBody.ReadAsync(context.Request, cancellationToken))
        {
            var depth = context.RequestServices.GetRequiredService<RequestLimits>().MaxJsonDepth;
            request = chat ? OpenAiRequestReader.ReadChat(body.Memory, id, depth) : OpenAiRequestReader.ReadCompletion(body.Memory, id, depth);
        }
        Observability.AccessLogEntry.SetModel(context, request.Model, null);
        request.Generation.Tenant = Protocol.RequestMetadata.TenantOf(context);
        GenerationStream stream;
        try
        {
            stream = await Generator(context).GenerateAsync(request.Model, null, request.Generation, cancellationToken);
        }
        catch (InferenceException e) when (e.Kind == InferenceErrorKind.NotFound)
        {
            e.Data[GenerationFields.ParamKey] = "model";
            throw;
        }
        Observability.AccessLogEntry.SetModel(context, stream.ModelName, stream.ModelVersion);
        var reply = new OpenAiReply(chat, id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), stream.ModelName);
        if (!request.Stream)
        {
            var result = await GenerationResult.ReadAsync(stream, cancellationToken);
            await JsonResponse.WriteAsync(context, 200, (reply, result), static (w, s) => OpenAiResponseWriter.Completion(w, s.reply, s.result));
            return;
        }
        await StreamAsync(context, reply, stream, request.IncludeUsage);
    }

    /// <summary>
    /// The streamed form: a chunk per piece of text, the finish reason on the last, optionally a usage chunk, then
    /// <c>[DONE]</c>. An engine failure after the first byte can only be reported in-band, as an error event.
    /// </summary>
    private static async Task StreamAsync(HttpContext context, OpenAiReply reply, GenerationStream stream, bool includeUsage)
    {
        var cancellationToken = context.RequestAborted;
        using var events = new ServerSentEvents(context.Response);
        await events.StartAsync(cancellationToken);
        try
        {
            if (reply.Chat)
            {
                await events.WriteAsync(new OpenAiDelta(reply, null, FinishReason.None, FirstChatChunk: true, includeUsage), OpenAiResponseWriter.Chunk, cancellationToken);
            }
            var finish = FinishReason.None;
            var completionTokens = 0;
            await foreach (var chunk in stream.Chunks.ReadAllAsync(cancellationToken))
            {
                completionTokens = chunk.CompletionTokens;
                finish = chunk.FinishReason;
                if (finish == FinishReason.Cancelled || (chunk.Text.Length == 0 && finish == FinishReason.None))
                {
                    if (finish == FinishReason.Cancelled)
                    {
                        break;
                    }
                    continue;
                }
                // A client that fell behind gets the pieces already made in one send.
                await events.WriteAsync(new OpenAiDelta(reply, chunk.Text, finish, FirstChatChunk: false, includeUsage), OpenAiResponseWriter.Chunk, cancellationToken,
                    flush: finish != FinishReason.None || !stream.Chunks.TryPeek(out _));
                if (finish != FinishReason.None)
                {
                    break;
                }
            }
            if (finish is FinishReason.None or FinishReason.Cancelled)
            {
                // Throws for a cancelled generation; a stream that ended without a reason gets its "stop" chunk here.
                finish = GenerationResult.Finished(finish, cancellationToken);
                await events.WriteAsync(new OpenAiDelta(reply, null, finish, FirstChatChunk: false, includeUsage), OpenAiResponseWriter.Chunk, cancellationToken);
            }
            if (includeUsage)
            {
                await events.WriteAsync((reply, new GenerationUsage(stream.PromptTokens, completionTokens)), OpenAiResponseWriter.UsageChunk, cancellationToken);
            }
            await events.WriteDoneAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; the engine saw the same token and has stopped.
        }
        catch (Exception e)
        {
            var error = Translate(context, e);
            await events.WriteAsync(error, OpenAiResponseWriter.Error, CancellationToken.None);
        }
    }

    /// <summary>Checks the API key, then runs <paramref name="handler"/> and answers its failures in OpenAI's error shape.</summary>
    private static RequestDelegate Guard(RequestDelegate handler) => async context =>
    {
        if (context.RequestServices.GetService<OpenAiOptions>()?.ApiKey is { Length: > 0 } apiKey && Unauthorized(context.Request, apiKey) is { } denied)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await JsonResponse.WriteAsync(context, denied.Status, denied, OpenAiResponseWriter.Error);
            return;
        }
        try
        {
            await handler(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is no one to answer.
        }
        catch (Exception e)
        {
            var error = Translate(context, e);
            if (context.Response.HasStarted)
            {
                return;
            }
            context.Response.Clear();
            if (e is InferenceException { RetryAfter: { } retryAfter })
            {
                context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            }
            if (e is InferenceException { RateLimit: { } rateLimit })
            {
                Protocol.RequestMetadata.WriteRateLimitHeaders(context.Response.Headers, rateLimit);
            }
            await JsonResponse.WriteAsync(context, error.Status, error, OpenAiResponseWriter.Error);
        }
    };

    /// <summary>The error for a failure: the server's status for its kind, OpenAI's type for that status, and the field if known.</summary>
    private static OpenAiError Translate(HttpContext context, Exception e)
    {
        switch (e)
        {
            case InferenceException inference:
                var status = RestErrorMiddleware.StatusCode(inference.Kind);
                var param = inference.Data[GenerationFields.ParamKey] as string;
                return new OpenAiError(status, inference.Message, TypeOf(status), param, status switch
                {
                    404 when param == "model" => "model_not_found",
                    429 => "rate_limit_exceeded",
                    _ => null,
                });
            case JsonException json:
                return new OpenAiError(400, "malformed JSON: " + json.Message, TypeOf(400));
            case BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge:
                return new OpenAiError(413, $"request body exceeds the limit of {context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes", TypeOf(400));
            case BadHttpRequestException bad:
                return new OpenAiError(400, bad.Message, TypeOf(400));
            default:
                var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OpenAiEndpoints).FullName!);
                Log.Unhandled(logger, context.Request.Path, e);
                return new OpenAiError(500, "internal server error", TypeOf(500));
        }
    }

    private static string TypeOf(int status) => status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_exceeded",
        < 500 => "invalid_request_error",
        _ => "server_error",
    };

    /// <summary>Null when the request carries <c>Authorization: Bearer &lt;key&gt;</c> with the right key; compared in constant time.</summary>
    private static OpenAiError? Unauthorized(HttpRequest request, string apiKey)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return new OpenAiError(401, "missing API key: send it as \"Authorization: Bearer <key>\"", TypeOf(401), Code: "invalid_api_key");
        }
        // Hashing first makes the comparison's time independent of the keys' lengths, too.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header.AsSpan(scheme.Length).Trim().ToString()));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));
        return CryptographicOperations.FixedTimeEquals(presented, expected)
            ? null
            : new OpenAiError(401, "incorrect API key", TypeOf(401), Code: "invalid_api_key");
    }

    private static InferenceException NotFound(string model)
    {
        var e = InferenceException.NotFound($"model '{model}' does not exist or is not a generative model (GET /v1/models lists them)");
        e.Data[GenerationFields.ParamKey] = "model";
        return e;
    }

    private static ITextGenerator Generator(HttpContext context) => context.RequestServices.GetRequiredService<ITextGenerator>();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error serving {Path}")]
        public static partial void Unhandled(ILogger logger, PathString path, Exception exception);
    }
}
