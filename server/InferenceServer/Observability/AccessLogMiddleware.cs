using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Observability;

/// <summary>
/// The access log: one JSON object per line per request, every port and every outcome (the port-routing 404s and the
/// error contract's answers included, since it runs first). The line is formatted on the request's thread into a pooled
/// buffer and handed to <see cref="AccessLogWriter"/>, which owns stdout; a request never waits for stdout.
/// </summary>
internal sealed class AccessLogMiddleware(RequestDelegate next, AccessLogWriter writer)
{
    /// <summary>Longest user agent logged; longer ones are cut.</summary>
    public const int MaxUserAgentLength = 256;

    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    [ThreadStatic]
    private static Http.PooledBufferWriter? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_json;

    public async Task InvokeAsync(HttpContext context)
    {
        var timestamp = DateTime.UtcNow;
        var start = Stopwatch.GetTimestamp();
        var entry = AccessLogEntry.Attach(context);
        var failed = false;
        try
        {
            await next(context);
        }
        catch
        {
            failed = true;
            throw;
        }
        finally
        {
            entry.Detach(context);
            var duration = Stopwatch.GetElapsedTime(start);
            // Each line's array is handed to the writer, which returns it to the pool: a thread formats lines without allocating.
            var buffer = t_buffer ??= new Http.PooledBufferWriter(1024, rentNow: false);
            try
            {
                Format(buffer, context, entry, timestamp, duration, failed);
                var (array, length) = buffer.Detach();
                writer.Enqueue(array, length);
            }
            catch (ArgumentException)
            {
                // Text JSON cannot carry (invalid UTF-16): the line is lost, not the response.
                writer.Drop(buffer.Detach().Array);
            }
        }
    }

    private static void Format(Http.PooledBufferWriter buffer, HttpContext context, AccessLogEntry entry, DateTime timestamp, TimeSpan duration, bool failed)
    {
        var request = context.Request;
        var json = t_json ??= new Utf8JsonWriter(buffer, Options);
        json.Reset(buffer);
        json.WriteStartObject();
        json.WriteString("timestamp", timestamp);
        json.WriteString("request_id", context.TraceIdentifier);
        json.WriteString("protocol", request.Protocol);
        json.WriteString("method", request.Method);
        // Without the query string, which may carry secrets. For gRPC this is the method: /package.Service/Method.
        json.WriteString("path", request.Path.Value);
        // An exception that escaped every handler becomes Kestrel's 500.
        json.WriteNumber("status", failed && !context.Response.HasStarted ? StatusCodes.Status500InternalServerError : context.Response.StatusCode);
        if (request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
        {
            if (GrpcStatus(context) is int grpcStatus)
            {
                json.WriteNumber("grpc_status", grpcStatus);
            }
            else
            {
                // The call ended without a status (the connection was lost).
                json.WriteNull("grpc_status");
            }
        }
        json.WriteNumber("duration_ms", Math.Round(duration.TotalMilliseconds, 3));
        json.WriteNumber("bytes_in", entry.BytesIn);
        json.WriteNumber("bytes_out", entry.BytesOut);
        var model = entry.Model;
        var version = entry.Version;
        if (model.Length == 0 && context.GetRouteValue("name") is string routeModel)
        {
            // REST: /v2/models/{name}[/versions/{version}]/..., /v1/models/{name}:predict, the repository API.
            model = routeModel;
            version = context.GetRouteValue("version") as string ?? "";
        }
        json.WriteString("model", model);
        json.WriteString("version", version);
        WriteClientAddress(json, context.Connection.RemoteIpAddress);
        var userAgent = request.Headers.UserAgent;
        json.WriteString("user_agent", UserAgent(userAgent));
        json.WriteEndObject();
        json.Flush();
        buffer.GetSpan(1)[0] = (byte)'\n';
        buffer.Advance(1);
    }

    private static int? GrpcStatus(HttpContext context)
    {
        // A call that fails before its first message answers "trailers-only": the status is in the headers.
        var value = context.Response.Headers.GrpcStatus;
        if (StringValues.IsNullOrEmpty(value))
        {
            value = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers.GrpcStatus ?? default;
        }
        return int.TryParse(value.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var status) ? status : null;
    }

    private static void WriteClientAddress(Utf8JsonWriter json, System.Net.IPAddress? address)
    {
        Span<char> text = stackalloc char[64];
        if (address is not null && address.TryFormat(text, out var written))
        {
            json.WriteString("client_address", text[..written]);
        }
        else
        {
            json.WriteString("client_address", "");
        }
    }

    private static ReadOnlySpan<char> UserAgent(StringValues values)
    {
        var value = values.Count > 0 ? values[0] ?? "" : "";
        return value.Length <= MaxUserAgentLength ? value : value.AsSpan(0, MaxUserAgentLength);
    }
}
