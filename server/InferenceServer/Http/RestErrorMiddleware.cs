using System.Text.Json;
using InferenceServer.Inference;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.Http;

/// <summary>
/// The REST error contract: every failure becomes <c>{"error": "..."}</c> with the status the core's error kind
/// maps to; a client's mistake is never a 500 and no response carries a stack trace.
/// </summary>
internal sealed partial class RestErrorMiddleware(RequestDelegate next, ILogger<RestErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (InferenceException e)
        {
            if (e.RetryAfter is { } retryAfter && !context.Response.HasStarted)
            {
                context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            await WriteErrorAsync(context, StatusCode(e.Kind), e.Message, e.RateLimit);
        }
        catch (BadHttpRequestException e)
        {
            var status = e.StatusCode == StatusCodes.Status413PayloadTooLarge ? 413 : 400;
            await WriteErrorAsync(context, status, status == 413
                ? $"request body exceeds the limit of {context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes"
                : e.Message);
        }
        catch (JsonException e)
        {
            await WriteErrorAsync(context, 400, "malformed JSON: " + e.Message);
        }
        catch (InvalidOperationException e) when (e.InnerException is System.Text.DecoderFallbackException)
        {
            // System.Text.Json validates a string's UTF-8 only when it reads the string: the client's bytes, not our fault.
            await WriteErrorAsync(context, 400, "malformed JSON: a string is not valid UTF-8");
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is no one to answer.
        }
        catch (Exception e)
        {
            Log.Unhandled(logger, context.Request.Path, e);
            await WriteErrorAsync(context, 500, "internal server error");
        }
    }

    public static int StatusCode(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.InvalidArgument or InferenceErrorKind.FailedPrecondition => 400,
        InferenceErrorKind.NotFound => 404,
        InferenceErrorKind.ResourceExhausted => 429,
        InferenceErrorKind.Unavailable => 503,
        InferenceErrorKind.DeadlineExceeded => 504,
        _ => 500,
    };

    public static async Task WriteErrorAsync(HttpContext context, int status, string message, RateLimitInfo? rateLimit = null)
    {
        if (context.Response.HasStarted)
        {
            return;
        }
        // Keep what was said about retrying and about the connection (a drain asks clients to close it).
        var retryAfter = context.Response.Headers.RetryAfter;
        var connection = context.Response.Headers.Connection;
        context.Response.Clear();
        context.Response.Headers.RetryAfter = retryAfter;
        context.Response.Headers.Connection = connection;
        if (rateLimit is not null)
        {
            Protocol.RequestMetadata.WriteRateLimitHeaders(context.Response.Headers, rateLimit);
        }
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter, JsonWriting.Options);
        writer.WriteStartObject();
        writer.WriteString("error", message);
        writer.WriteEndObject();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error serving {Path}")]
        public static partial void Unhandled(ILogger logger, PathString path, Exception exception);
    }
}
