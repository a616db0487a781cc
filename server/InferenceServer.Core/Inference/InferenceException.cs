namespace InferenceServer.Inference;

/// <summary>What went wrong, in the terms every protocol adapter maps to its own status codes.</summary>
public enum InferenceErrorKind
{
    /// <summary>The client's request is malformed or does not fit the model (400 / INVALID_ARGUMENT).</summary>
    InvalidArgument,
    /// <summary>No such model or version (404 / NOT_FOUND).</summary>
    NotFound,
    /// <summary>This server cannot serve the model now (503 / UNAVAILABLE).</summary>
    Unavailable,
    /// <summary>A size or load limit was exceeded (413 or 429 / RESOURCE_EXHAUSTED).</summary>
    ResourceExhausted,
    /// <summary>The operation is not allowed in the server's current mode (400 / FAILED_PRECONDITION).</summary>
    FailedPrecondition,
    /// <summary>The engine failed (500 / INTERNAL).</summary>
    Internal,
    /// <summary>The request's deadline passed before it could run (504 / DEADLINE_EXCEEDED).</summary>
    DeadlineExceeded,
}

/// <summary>The one error type that crosses from the core to the protocol adapters; its message is safe to show a client.</summary>
public sealed class InferenceException : Exception
{
    /// <summary>Creates an error of <paramref name="kind"/> with a client-facing message.</summary>
    public InferenceException(InferenceErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;

    /// <summary>The category of the error.</summary>
    public InferenceErrorKind Kind { get; }

    /// <summary>For load shedding: when the client may usefully retry (REST Retry-After).</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>For a rate or concurrency limit: the limit that rejected the request (REST x-ratelimit-* headers, gRPC trailers).</summary>
    public RateLimitInfo? RateLimit { get; init; }

    /// <summary>An <see cref="InferenceErrorKind.InvalidArgument"/> error.</summary>
    public static InferenceException InvalidArgument(string message) => new(InferenceErrorKind.InvalidArgument, message);

    /// <summary>A <see cref="InferenceErrorKind.NotFound"/> error.</summary>
    public static InferenceException NotFound(string message) => new(InferenceErrorKind.NotFound, message);

    /// <summary>An <see cref="InferenceErrorKind.Unavailable"/> error.</summary>
    public static InferenceException Unavailable(string message) => new(InferenceErrorKind.Unavailable, message);
}


/// <summary>
/// The limit that turned a request away, as the <c>x-ratelimit-limit</c>, <c>x-ratelimit-remaining</c> and
/// <c>x-ratelimit-reset</c> headers state it: the bucket's capacity (or the concurrency permits), what is left of it,
/// and the whole seconds until a request can be admitted again.
/// </summary>
public sealed record RateLimitInfo(long Limit, long Remaining, long ResetSeconds);

/// <summary>
/// The status a request's outcome is reported under, by metrics and traces alike: an error's kind (null for a
/// cancellation), and its gRPC status name.
/// </summary>
public static class InferenceStatus
{
    /// <summary>The name of success.</summary>
    public const string Ok = "OK";

    /// <summary>The kind an error counts as: its <see cref="InferenceErrorKind"/>, null for a cancellation, Internal otherwise.</summary>
    public static InferenceErrorKind? KindOf(Exception error) => error switch
    {
        InferenceException e => e.Kind,
        OperationCanceledException => null,
        _ => InferenceErrorKind.Internal,
    };

    /// <summary>The gRPC status name of a kind (null: CANCELLED).</summary>
    public static string Name(InferenceErrorKind? kind) => kind switch
    {
        null => "CANCELLED",
        InferenceErrorKind.InvalidArgument => "INVALID_ARGUMENT",
        InferenceErrorKind.NotFound => "NOT_FOUND",
        InferenceErrorKind.Unavailable => "UNAVAILABLE",
        InferenceErrorKind.ResourceExhausted => "RESOURCE_EXHAUSTED",
        InferenceErrorKind.FailedPrecondition => "FAILED_PRECONDITION",
        InferenceErrorKind.DeadlineExceeded => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
}
