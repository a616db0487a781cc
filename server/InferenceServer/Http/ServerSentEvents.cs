using System.Buffers;
using System.Text.Json;

namespace InferenceServer.Http;

/// <summary>
/// A <c>text/event-stream</c> response: each event is one <c>data: {json}</c> line and a blank line, flushed to the
/// client as it is written. JSON never holds a raw newline, so an event is always exactly one data line.
/// </summary>
internal sealed class ServerSentEvents(HttpResponse response) : IDisposable
{
    private Utf8JsonWriter? _json;

    /// <summary>Sends the status and headers (200, no caching, no proxy buffering).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        // nginx (and ingress controllers built on it) would otherwise hold events back.
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(cancellationToken);
        // StartAsync only commits the headers; flushing sends them, so a client whose request waits for a slot
        // sees the stream open at once instead of nothing until the first token.
        await response.BodyWriter.FlushAsync(cancellationToken);
    }

    /// <summary>
    /// Writes one event whose data is the JSON <paramref name="write"/> produces, and flushes it unless
    /// <paramref name="flush"/> is false (more events are ready: they go out together in one send).
    /// </summary>
    public async ValueTask WriteAsync<TState>(TState state, Action<Utf8JsonWriter, TState> write, CancellationToken cancellationToken, bool flush = true)
    {
        var pipe = response.BodyWriter;
        pipe.Write("data: "u8);
        if (_json is null)
        {
            _json = new Utf8JsonWriter(pipe, JsonWriting.Options);
        }
        else
        {
            _json.Reset(pipe);
        }
        write(_json, state);
        _json.Flush();
        pipe.Write("\n\n"u8);
        if (flush)
        {
            await pipe.FlushAsync(cancellationToken);
        }
    }

    /// <summary>Writes OpenAI's end-of-stream event, <c>data: [DONE]</c>.</summary>
    public async ValueTask WriteDoneAsync(CancellationToken cancellationToken)
    {
        response.BodyWriter.Write("data: [DONE]\n\n"u8);
        await response.BodyWriter.FlushAsync(cancellationToken);
    }

    public void Dispose() => _json?.Dispose();
}
