using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.Http.OpenAi;

/// <summary>
/// The OpenAI-compatible API on the REST port, at <c>/v1</c> and at KServe's <c>/openai/v1</c>: models, completions and
/// chat completions, whole or streamed as server-sent events; and vLLM's <c>/tokenize</c> and <c>/detokenize</c> at the
/// root. Errors use OpenAI's shape with the server's status codes.
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
        MapTokenize(app);
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
        var tenant = Protocol.RequestMetadata.TenantOf(context);
        var generations = request.Generations;
        // Several prompts run as several generations, one choice each; when one fails or the response ends early, the
        // others are cancelled so that their slots are freed. One prompt needs no token of its own.
        using var several = generations.Count > 1 ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken) : null;
        var generationToken = several?.Token ?? cancellationToken;
        var streams = new GenerationStream[generations.Count];
        var started = 0;
        try
        {
            for (; started < streams.Length; started++)
            {
                generations[started].Tenant = tenant;
                streams[started] = await Generator(context).GenerateAsync(request.Model, null, generations[started], generationToken);
            }
        }
        catch (Exception e)
        {
            several?.Cancel();
            if (e is InferenceException { Kind: InferenceErrorKind.NotFound })
            {
                e.Data[GenerationFields.ParamKey] = "model";
            }
            else if (e is InferenceException { Kind: InferenceErrorKind.InvalidArgument } invalid && invalid.Data[PromptAdmission.PromptErrorKey] is string code)
            {
                // The prompt itself was refused (too long, an id outside the vocabulary, ...): name it, and which one of several.
                var named = several is null ? invalid : new InferenceException(InferenceErrorKind.InvalidArgument, $"prompt[{started}]: {invalid.Message}", invalid);
                named.Data[GenerationFields.ParamKey] = chat ? "messages" : "prompt";
                named.Data[GenerationFields.CodeKey] = code == PromptAdmission.ContextLengthExceeded ? code : null;
                if (several is not null)
                {
                    throw named;
                }
            }
            throw;
        }
        Observability.AccessLogEntry.SetModel(context, streams[0].ModelName, streams[0].ModelVersion);
        if (Array.Find(streams, s => s.FallbackFor is not null) is { } fallback)
        {
            // The breaker of the model asked for is open: its fallback model serves (the reply's "model" names it too).
            context.Response.Headers[Protocol.RequestMetadata.ServedByModelHeader] = fallback.ServedBy;
        }
        var reply = new OpenAiReply(chat, id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), streams[0].ModelName);
        try
        {
            if (!request.Stream)
            {
                var results = streams.Length == 1
                    ? [await GenerationResult.ReadAsync(streams[0], cancellationToken)]
                    : await ReadAllAsync(streams, several!);
                await JsonResponse.WriteAsync(context, 200, (reply, results), static (w, s) => OpenAiResponseWriter.Completion(w, s.reply, s.results));
                return;
            }
            await StreamAsync(context, reply, streams, several, request.IncludeUsage);
        }
        finally
        {
            // Every generation has finished unless the response failed part way; those still running stop and free their slots.
            several?.Cancel();
        }
    }

    /// <summary>Reads several generations to their ends; the first failure cancels the rest and is the one reported.</summary>
    private static async Task<GenerationResult[]> ReadAllAsync(GenerationStream[] streams, CancellationTokenSource several)
    {
        var reads = new Task<GenerationResult>[streams.Length];
        for (var i = 0; i < streams.Length; i++)
        {
            reads[i] = ReadOneAsync(streams[i], several);
        }
        return await Task.WhenAll(reads);

        static async Task<GenerationResult> ReadOneAsync(GenerationStream stream, CancellationTokenSource several)
        {
            try
            {
                return await GenerationResult.ReadAsync(stream, several.Token);
            }
            catch
            {
                // The others end as cancelled; Task.WhenAll reports this fault before their cancellations.
                several.Cancel();
                throw;
            }
        }
    }

    /// <summary>
    /// The streamed form: a chunk per piece of text (with several prompts, pieces of different choices interleave as
    /// they are made, each naming its choice's index), each choice's finish reason on its last chunk, optionally a usage
    /// chunk over every choice, then <c>[DONE]</c>. An engine failure after the first byte can only be reported in-band,
    /// as an error event.
    /// </summary>
    private static async Task StreamAsync(HttpContext context, OpenAiReply reply, GenerationStream[] streams, CancellationTokenSource? several, bool includeUsage)
    {
        var cancellationToken = context.RequestAborted;
        using var events = new ServerSentEvents(context.Response);
        await events.StartAsync(cancellationToken);
        var choices = new StreamedChoices(reply, streams.Length, includeUsage);
        try
        {
            if (reply.Chat)
            {
                await events.WriteAsync(new OpenAiDelta(reply, 0, null, FinishReason.None, FirstChatChunk: true, includeUsage), OpenAiResponseWriter.Chunk, cancellationToken);
            }
            if (streams.Length == 1)
            {
                // One prompt: its chunks straight from the engine's channel.
                var chunks = streams[0].Chunks;
                await foreach (var chunk in chunks.ReadAllAsync(cancellationToken))
                {
                    if (choices.Take(0, chunk, out var last) is { } delta)
                    {
                        // A client that fell behind gets the pieces already made in one send.
                        await events.WriteAsync(delta, OpenAiResponseWriter.Chunk, cancellationToken, flush: last || !chunks.TryPeek(out _));
                    }
                    if (last)
                    {
                        break;
                    }
                }
                if (choices.End(0, cancellationToken) is { } end)
                {
                    await events.WriteAsync(end, OpenAiResponseWriter.Chunk, cancellationToken);
                }
            }
            else
            {
                await InterleaveAsync(events, streams, choices, several!.Token, cancellationToken);
            }
            if (includeUsage)
            {
                var usage = new GenerationUsage(streams.Sum(s => s.PromptTokens), choices.CompletionTokens);
                await events.WriteAsync((reply, usage), OpenAiResponseWriter.UsageChunk, cancellationToken);
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

    /// <summary>
    /// Streams several generations as one: a reader per generation forwards its chunks, in order, into one channel
    /// whose chunks are written as they arrive. A generation's failure is rethrown here.
    /// </summary>
    private static async Task InterleaveAsync(
        ServerSentEvents events, GenerationStream[] streams, StreamedChoices choices, CancellationToken generationToken, CancellationToken cancellationToken)
    {
        var merged = Channel.CreateUnbounded<IndexedChunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        for (var i = 0; i < streams.Length; i++)
        {
            _ = ForwardAsync(i, streams[i].Chunks, merged.Writer, generationToken);
        }
        var ended = 0;
        while (ended < streams.Length)
        {
            var item = await merged.Reader.ReadAsync(cancellationToken);
            if (item.Error is { } error)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
            }
            if (item.Chunk is { } chunk)
            {
                if (choices.Take(item.Index, chunk, out var last) is { } delta)
                {
                    await events.WriteAsync(delta, OpenAiResponseWriter.Chunk, cancellationToken, flush: last || !merged.Reader.TryPeek(out _));
                }
                continue;
            }
            if (choices.End(item.Index, cancellationToken) is { } end)
            {
                await events.WriteAsync(end, OpenAiResponseWriter.Chunk, cancellationToken);
            }
            ended++;
        }

        static async Task ForwardAsync(int index, ChannelReader<GenerationChunk> source, ChannelWriter<IndexedChunk> sink, CancellationToken token)
        {
            try
            {
                await foreach (var chunk in source.ReadAllAsync(token))
                {
                    sink.TryWrite(new IndexedChunk(index, chunk, null));
                    if (chunk.FinishReason != FinishReason.None)
                    {
                        break;
                    }
                }
                sink.TryWrite(new IndexedChunk(index, null, null));
            }
            catch (Exception e)
            {
                sink.TryWrite(new IndexedChunk(index, null, e));
            }
        }
    }

    /// <summary>A chunk of choice <see cref="Index"/>, its end (neither set), or its failure.</summary>
    private readonly record struct IndexedChunk(int Index, GenerationChunk? Chunk, Exception? Error);

    /// <summary>The streamed choices: each one's finish reason and tokens so far, and the stream chunk each engine chunk becomes.</summary>
    private sealed class StreamedChoices(OpenAiReply reply, int count, bool usageNull)
    {
        private readonly FinishReason[] _finish = new FinishReason[count];
        private readonly int[] _completionTokens = new int[count];

        /// <summary>Completion tokens over every choice.</summary>
        public int CompletionTokens => _completionTokens.Sum();

        /// <summary>
        /// Takes a chunk of choice <paramref name="index"/>: the stream chunk to send for it (none for an empty piece or a
        /// cancellation), and whether it was the choice's last (<paramref name="last"/>).
        /// </summary>
        public OpenAiDelta? Take(int index, GenerationChunk chunk, out bool last)
        {
            _completionTokens[index] = chunk.CompletionTokens;
            var finish = _finish[index] = chunk.FinishReason;
            last = finish != FinishReason.None;
            return finish == FinishReason.Cancelled || (chunk.Text.Length == 0 && finish == FinishReason.None)
                ? null
                : new OpenAiDelta(reply, index, chunk.Text, finish, FirstChatChunk: false, usageNull);
        }

        /// <summary>
        /// Choice <paramref name="index"/> has no more chunks: the "stop" chunk of one that ended without a reason, or
        /// none when its last chunk was sent. Throws for a cancelled generation (<see cref="GenerationResult.Finished"/>).
        /// </summary>
        public OpenAiDelta? End(int index, CancellationToken cancellationToken)
        {
            if (_finish[index] is not (FinishReason.None or FinishReason.Cancelled))
            {
                return null;
            }
            _finish[index] = GenerationResult.Finished(_finish[index], cancellationToken);
            return new OpenAiDelta(reply, index, null, _finish[index], FirstChatChunk: false, usageNull);
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
                    _ => inference.Data[GenerationFields.CodeKey] as string,
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
