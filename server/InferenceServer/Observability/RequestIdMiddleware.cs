using System.Collections;

namespace InferenceServer.Observability;

/// <summary>
/// Gives every request an id (<see cref="RequestId"/>): it becomes <see cref="HttpContext.TraceIdentifier"/>, is
/// echoed in the <c>x-request-id</c> response header (gRPC: response header metadata, errors and streams included) and
/// is in the logging scope of everything logged while the request runs.
/// </summary>
internal sealed class RequestIdMiddleware(RequestDelegate next, ILogger<RequestIdMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var id = RequestId.From(context.Request.Headers[RequestId.Header]);
        context.TraceIdentifier = id;
        // Set when the headers go out, so that an error response that clears the headers still carries it.
        context.Response.OnStarting(static state =>
        {
            var c = (HttpContext)state;
            c.Response.Headers[RequestId.Header] = c.TraceIdentifier;
            return Task.CompletedTask;
        }, context);
        // As ASP.NET Core's own request scope: only when something logs at all.
        using var scope = logger.IsEnabled(LogLevel.Critical) ? logger.BeginScope(new Scope(id)) : null;
        await next(context);
    }

    /// <summary>The logging scope: one property, <c>XRequestId</c> (ASP.NET Core's scope already has a <c>RequestId</c>, Kestrel's).</summary>
    private sealed class Scope(string id) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public const string Key = "XRequestId";

        public int Count => 1;

        public KeyValuePair<string, object?> this[int index] =>
            index == 0 ? new(Key, id) : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            yield return this[0];
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => $"{RequestId.Header}:{id}";
    }
}
