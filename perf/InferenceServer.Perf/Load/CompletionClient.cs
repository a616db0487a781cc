using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Perf;

/// <summary>A streamed completion that did not end as the protocol says; <see cref="Status"/> is what the load loop counts it under.</summary>
internal sealed class CompletionStreamException(string status, string message) : Exception(message)
{
    /// <summary><c>sse:error</c> (an error event), <c>sse:truncated</c> (no finish_reason or no [DONE]), <c>sse:malformed</c> (bad JSON).</summary>
    public string Status { get; } = status;
}

/// <summary>
/// How one streamed completion went: when it was sent, when the first and last non-empty text arrived (Stopwatch
/// timestamps; 0 when none did), the characters of text received, the usage's token counts when the stream sent
/// them, and the finish reason.
/// </summary>
internal readonly record struct CompletionOutcome(long Sent, long FirstText, long LastText, int TextChars, int? UsageTokens, int? PromptTokens, string FinishReason)
{
    /// <summary>The events that carried non-empty text (the server sends one per sampled token whose text is complete).</summary>
    public int TextEvents { get; init; }

    /// <summary>Generated tokens: the usage chunk's count when there is one, else the characters (one per token for a character model).</summary>
    public int Tokens => UsageTokens ?? TextChars;
}

/// <summary>
/// OpenAI-compatible streaming completions over HTTP/1.1: <c>POST /v1/completions</c> with <c>"stream": true</c> and
/// <c>stream_options.include_usage</c>, the body read as server-sent events while it arrives. One client (one
/// connection pool of up to <c>maxConnections</c> keep-alive connections) serves every concurrent stream.
/// </summary>
internal sealed class CompletionClient : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private readonly HttpClient _http;
    private readonly Uri _completions;

    public CompletionClient(Uri server, string model, int maxConnections)
    {
        Model = model;
        _completions = new Uri(server, "v1/completions");
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            MaxConnectionsPerServer = maxConnections,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        })
        {
            // With ResponseHeadersRead this bounds the wait for the headers; the body's reads honour the loop's token.
            Timeout = LoadLoop.RequestTimeout,
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    public string Model { get; }

    /// <summary>The request body (built once, sent many times): greedy, <paramref name="maxTokens"/> tokens, streamed, with usage.</summary>
    public byte[] Body(string prompt, int maxTokens)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("model", Model);
            w.WriteString("prompt", prompt);
            w.WriteNumber("max_tokens", maxTokens);
            w.WriteNumber("temperature", 0);
            w.WriteBoolean("stream", true);
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>
    /// The request body of a token-id prompt (<c>"prompt": [ids]</c>, no tokenization on the server): greedy,
    /// exactly <paramref name="maxTokens"/> tokens (<c>ignore_eos</c>), streamed, with usage.
    /// </summary>
    public byte[] Body(IReadOnlyList<int> promptIds, int maxTokens)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("model", Model);
            w.WriteStartArray("prompt");
            foreach (var id in promptIds)
            {
                w.WriteNumberValue(id);
            }
            w.WriteEndArray();
            w.WriteNumber("max_tokens", maxTokens);
            w.WriteNumber("temperature", 0);
            w.WriteBoolean("ignore_eos", true);
            w.WriteBoolean("stream", true);
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>
    /// Sends one completion and reads its events to <c>[DONE]</c>. <paramref name="onText"/> is called (timestamp,
    /// characters) as each non-empty text arrives; <paramref name="text"/>, when given, receives the text itself.
    /// Throws <see cref="HttpRequestException"/> (with the status) for a non-200 answer, <see cref="CompletionStreamException"/>
    /// for a stream that breaks the protocol.
    /// </summary>
    public async Task<CompletionOutcome> StreamAsync(byte[] body, Action<long, int>? onText, StringBuilder? text, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _completions) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = Json;
        var sent = Stopwatch.GetTimestamp();
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var message = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}: {(message.Length > 300 ? message[..300] : message)}", null, response.StatusCode);
        }
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using var events = new ServerSentEventReader(stream);
        long first = 0, last = 0;
        var chars = 0;
        var textEvents = 0;
        int? usage = null, prompt = null;
        string? finish = null;
        while (await events.MoveNextAsync(cancellationToken).ConfigureAwait(false))
        {
            CompletionEvent e;
            try
            {
                e = CompletionEvent.Parse(events.Data, text);
            }
            catch (JsonException x)
            {
                throw new CompletionStreamException("sse:malformed", $"an event is not the expected JSON ({x.Message}): {Encoding.UTF8.GetString(events.Data[..Math.Min(200, events.Data.Length)])}");
            }
            if (e.Done)
            {
                return finish is null
                    ? throw new CompletionStreamException("sse:truncated", "[DONE] came before any finish_reason")
                    : new CompletionOutcome(sent, first, last, chars, usage, prompt, finish) { TextEvents = textEvents };
            }
            if (e.Error is { } error)
            {
                throw new CompletionStreamException("sse:error", "error event: " + error);
            }
            if (e.TextChars > 0)
            {
                last = Stopwatch.GetTimestamp();
                if (first == 0)
                {
                    first = last;
                }
                chars += e.TextChars;
                textEvents++;
                onText?.Invoke(last, e.TextChars);
            }
            finish ??= e.FinishReason;
            if (e.CompletionTokens is { } completion)
            {
                usage = completion;
                prompt = e.PromptTokens;
            }
        }
        throw new CompletionStreamException("sse:truncated", $"the stream ended without [DONE] (finish_reason {finish ?? "none"}, {chars} characters)");
    }

    public void Dispose() => _http.Dispose();
}
