using System.Net;
using Grpc.Core;

namespace InferenceServer.Client;

/// <summary>
/// A call the server (or the transport) answered with an error. <see cref="HttpStatus"/> is set for REST calls and
/// <see cref="GrpcStatus"/> for gRPC calls. The subclasses name the classes of the server's status codes.
/// </summary>
public class InferenceServerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InferenceServerException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
        : base(message, inner)
    {
        HttpStatus = httpStatus;
        GrpcStatus = grpcStatus;
    }

    /// <summary>The REST status, for a REST call.</summary>
    public HttpStatusCode? HttpStatus { get; }

    /// <summary>The gRPC status, for a gRPC call.</summary>
    public StatusCode? GrpcStatus { get; }

    /// <summary>How long the server asked the client to wait (<c>Retry-After</c> / <c>grpc-retry-pushback-ms</c>), when it said.</summary>
    public TimeSpan? RetryAfter { get; internal set; }

    /// <summary>The request id the server answered with (<c>x-request-id</c>), when known.</summary>
    public string? RequestId { get; internal set; }
}

/// <summary>Unknown model or version (404 / NOT_FOUND).</summary>
public sealed class ModelNotFoundException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);

/// <summary>The client's mistake: wrong shape, datatype, input, field, or a request too large (400, 413 / INVALID_ARGUMENT).</summary>
public sealed class InvalidInputException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);

/// <summary>Pod-local overload: a rate or concurrency limit or a full queue (429 / RESOURCE_EXHAUSTED). Retried by the policy.</summary>
public sealed class RateLimitedException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);

/// <summary>The server cannot serve now: draining, model not ready, breaker open, or no connection (503 / UNAVAILABLE). Retried by the policy.</summary>
public sealed class UnavailableException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);

/// <summary>The call's deadline passed, on the client or while queued on the server (504 / DEADLINE_EXCEEDED).</summary>
public sealed class DeadlineExceededException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);

/// <summary>The model failed on a valid request, or the server failed (500 / INTERNAL). Never retried.</summary>
public sealed class ServerErrorException(string message, HttpStatusCode? httpStatus, StatusCode? grpcStatus, Exception? inner = null)
    : InferenceServerException(message, httpStatus, grpcStatus, inner);
