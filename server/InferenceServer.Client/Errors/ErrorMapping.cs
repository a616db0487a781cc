using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Grpc.Core;

namespace InferenceServer.Client;

/// <summary>Maps REST and gRPC errors to the typed exceptions.</summary>
internal static class ErrorMapping
{
    public static InferenceServerException FromHttp(HttpStatusCode status, string body, HttpResponseHeaders headers)
    {
        var message = ErrorMessageOf(body) ?? $"the server answered {(int)status} {status}";
        var retryAfter = RetryAfterOf(headers.RetryAfter);
        var requestId = headers.TryGetValues("x-request-id", out var ids) ? ids.FirstOrDefault() : null;
        InferenceServerException exception = (int)status switch
        {
            400 or 413 or 422 => new InvalidInputException(message, status, null),
            404 => new ModelNotFoundException(message, status, null),
            429 => new RateLimitedException(message, status, null),
            503 => new UnavailableException(message, status, null),
            504 => new DeadlineExceededException(message, status, null),
            500 => new ServerErrorException(message, status, null),
            _ => new InferenceServerException(message, status, null),
        };
        return exception.With(retryAfter, requestId);
    }

    public static InferenceServerException FromGrpc(RpcException rpc)
    {
        var message = string.IsNullOrEmpty(rpc.Status.Detail) ? $"the server answered {rpc.StatusCode}" : rpc.Status.Detail;
        var retryAfter = PushbackOf(rpc.Trailers);
        var requestId = rpc.Trailers.GetValue("x-request-id");
        var code = rpc.StatusCode;
        InferenceServerException exception = code switch
        {
            StatusCode.InvalidArgument or StatusCode.OutOfRange => new InvalidInputException(message, null, code, rpc),
            StatusCode.NotFound => new ModelNotFoundException(message, null, code, rpc),
            // RESOURCE_EXHAUSTED is overload, except for a message over the size limit (the client's mistake, never retried).
            StatusCode.ResourceExhausted when retryAfter is null && IsMessageTooLarge(message) => new InvalidInputException(message, null, code, rpc),
            StatusCode.ResourceExhausted => new RateLimitedException(message, null, code, rpc),
            StatusCode.Unavailable => new UnavailableException(message, null, code, rpc),
            StatusCode.DeadlineExceeded => new DeadlineExceededException(message, null, code, rpc),
            StatusCode.Internal or StatusCode.Unknown => new ServerErrorException(message, null, code, rpc),
            _ => new InferenceServerException(message, null, code, rpc),
        };
        return exception.With(retryAfter, requestId);
    }

    private static bool IsMessageTooLarge(string message) =>
        message.Contains("exceeds", StringComparison.OrdinalIgnoreCase) && message.Contains("message", StringComparison.OrdinalIgnoreCase)
        || message.Contains("too large", StringComparison.OrdinalIgnoreCase)
        || message.Contains("larger than", StringComparison.OrdinalIgnoreCase);

    private static InferenceServerException With(this InferenceServerException e, TimeSpan? retryAfter, string? requestId)
    {
        e.RetryAfter = retryAfter;
        e.RequestId = requestId;
        return e;
    }

    /// <summary>The <c>error</c> field of a JSON error body, or the body itself when it is short plain text.</summary>
    public static string? ErrorMessageOf(string body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out var error))
            {
                return error.ValueKind switch
                {
                    JsonValueKind.String => error.GetString(),
                    // OpenAI's shape: {"error": {"message": ...}}
                    JsonValueKind.Object when error.TryGetProperty("message", out var m) => m.GetString(),
                    _ => error.GetRawText(),
                };
            }
        }
        catch (JsonException)
        {
        }
        return body.Length <= 500 ? body.Trim() : body[..500].Trim() + "…";
    }

    private static TimeSpan? RetryAfterOf(RetryConditionHeaderValue? header)
    {
        if (header?.Delta is { } delta)
        {
            return delta;
        }
        if (header?.Date is { } date)
        {
            var wait = date - DateTimeOffset.UtcNow;
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }
        return null;
    }

    private static TimeSpan? PushbackOf(Metadata trailers)
    {
        var pushback = trailers.GetValue("grpc-retry-pushback-ms");
        if (pushback is not null && long.TryParse(pushback, NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            return TimeSpan.FromMilliseconds(ms);
        }
        var retryAfter = trailers.GetValue("retry-after");
        if (retryAfter is not null && long.TryParse(retryAfter, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return TimeSpan.FromSeconds(seconds);
        }
        return null;
    }
}
