using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Perf;

/// <summary>
/// Reads a <c>text/event-stream</c> body event by event as it arrives, without buffering the body: lines are split
/// in the pipe's own buffers, each event's <c>data</c> lines are joined (with '\n') into one reused buffer, comments
/// and other fields are skipped, and an event is dispatched at its blank line (the SSE specification's rules; lines end
/// in LF or CRLF). An event cut off by the end of the stream is dropped, as the specification says.
/// </summary>
internal sealed class ServerSentEventReader : IAsyncDisposable
{
    private readonly PipeReader _pipe;
    private byte[] _data = new byte[1024];
    private int _length;
    private bool _hasData;

    public ServerSentEventReader(Stream stream) =>
        _pipe = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true));

    /// <summary>The current event's data (its data lines joined); valid until the next <see cref="MoveNextAsync"/>.</summary>
    public ReadOnlySpan<byte> Data => _data.AsSpan(0, _length);

    /// <summary>Reads up to the next event; false at the end of the stream.</summary>
    public async ValueTask<bool> MoveNextAsync(CancellationToken cancellationToken)
    {
        _length = 0;
        _hasData = false;
        while (true)
        {
            var result = await _pipe.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (TryReadEvent(ref buffer))
            {
                // Consumed up to the event's end, and nothing after it examined: complete lines may follow already.
                _pipe.AdvanceTo(buffer.Start);
                return true;
            }
            _pipe.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return false;
            }
        }
    }

    /// <summary>Consumes whole lines from <paramref name="buffer"/> until an event is complete (true) or no whole line is left (false).</summary>
    private bool TryReadEvent(ref ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        try
        {
            while (reader.TryReadTo(out ReadOnlySpan<byte> line, (byte)'\n'))
            {
                if (line.Length > 0 && line[^1] == (byte)'\r')
                {
                    line = line[..^1];
                }
                if (line.IsEmpty)
                {
                    if (_hasData)
                    {
                        return true;
                    }
                    continue;
                }
                if (line[0] == (byte)':')
                {
                    continue;
                }
                var colon = line.IndexOf((byte)':');
                var field = colon < 0 ? line : line[..colon];
                if (!field.SequenceEqual("data"u8))
                {
                    continue;
                }
                var value = colon < 0 ? [] : line[(colon + 1)..];
                if (value.Length > 0 && value[0] == (byte)' ')
                {
                    value = value[1..];
                }
                Append(value);
            }
            return false;
        }
        finally
        {
            buffer = buffer.Slice(reader.Position);
        }
    }

    private void Append(ReadOnlySpan<byte> value)
    {
        var needed = _length + (_hasData ? 1 : 0) + value.Length;
        if (needed > _data.Length)
        {
            Array.Resize(ref _data, Math.Max(needed, _data.Length * 2));
        }
        if (_hasData)
        {
            _data[_length++] = (byte)'\n';
        }
        value.CopyTo(_data.AsSpan(_length));
        _length += value.Length;
        _hasData = true;
    }

    public ValueTask DisposeAsync() => _pipe.CompleteAsync();
}

/// <summary>
/// What one OpenAI streaming completion event says: the characters of <c>choices[0].text</c>, <c>choices[0].finish_reason</c>,
/// the <c>usage</c> (the extra last chunk of <c>stream_options.include_usage</c>), an <c>error</c>, or the final <c>[DONE]</c>.
/// </summary>
internal readonly record struct CompletionEvent(int TextChars, string? FinishReason, int? PromptTokens, int? CompletionTokens, bool Done, string? Error)
{
    /// <summary>
    /// Parses one event's data without building a document: only the fields above are read, everything else is
    /// skipped. The text itself is appended to <paramref name="text"/> when one is given (checks, not load).
    /// </summary>
    public static CompletionEvent Parse(ReadOnlySpan<byte> data, StringBuilder? text = null)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            return new CompletionEvent(0, null, null, null, true, null);
        }
        var reader = new Utf8JsonReader(data);
        int chars = 0;
        string? finish = null, error = null;
        int? prompt = null, completion = null;
        Expect(ref reader, JsonTokenType.StartObject);
        while (Next(ref reader) == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                if (Next(ref reader) != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                for (var index = 0; Next(ref reader) != JsonTokenType.EndArray; index++)
                {
                    if (index > 0 || reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }
                    while (Next(ref reader) == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("text"u8))
                        {
                            chars = Next(ref reader) == JsonTokenType.String ? CountChars(ref reader, text) : SkipCurrent(ref reader, 0);
                        }
                        else if (reader.ValueTextEquals("finish_reason"u8))
                        {
                            finish = Next(ref reader) == JsonTokenType.String ? reader.GetString() : SkipCurrent<string?>(ref reader, null);
                        }
                        else
                        {
                            SkipValue(ref reader);
                        }
                    }
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                if (Next(ref reader) != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }
                while (Next(ref reader) == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("prompt_tokens"u8))
                    {
                        prompt = Next(ref reader) == JsonTokenType.Number ? reader.GetInt32() : SkipCurrent<int?>(ref reader, null);
                    }
                    else if (reader.ValueTextEquals("completion_tokens"u8))
                    {
                        completion = Next(ref reader) == JsonTokenType.Number ? reader.GetInt32() : SkipCurrent<int?>(ref reader, null);
                    }
                    else
                    {
                        SkipValue(ref reader);
                    }
                }
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                Next(ref reader);
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                error = Encoding.UTF8.GetString(data[start..(int)reader.BytesConsumed]).Trim();
            }
            else
            {
                SkipValue(ref reader);
            }
        }
        return new CompletionEvent(chars, finish, prompt, completion, false, error);
    }

    private static int CountChars(ref Utf8JsonReader reader, StringBuilder? text)
    {
        if (text is null && !reader.ValueIsEscaped)
        {
            return Encoding.UTF8.GetCharCount(reader.ValueSpan);
        }
        // Unescaped, a string is never longer in chars than its escaped bytes.
        var length = reader.ValueSpan.Length;
        var rented = length > 256 ? ArrayPool<char>.Shared.Rent(length) : null;
        var chars = rented ?? stackalloc char[256];
        var count = reader.CopyString(chars);
        text?.Append(chars[..count]);
        if (rented is not null)
        {
            ArrayPool<char>.Shared.Return(rented);
        }
        return count;
    }

    private static JsonTokenType Next(ref Utf8JsonReader reader) =>
        reader.Read() ? reader.TokenType : throw new JsonException("the event's JSON ends early");

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type)
    {
        if (Next(ref reader) != type)
        {
            throw new JsonException($"expected {type}, found {reader.TokenType}");
        }
    }

    /// <summary>Skips the value the reader is on (an object or array whole) and returns <paramref name="result"/>.</summary>
    private static T SkipCurrent<T>(ref Utf8JsonReader reader, T result)
    {
        reader.Skip();
        return result;
    }

    private static void SkipValue(ref Utf8JsonReader reader)
    {
        Next(ref reader);
        reader.Skip();
    }

    /// <summary>
    /// Checks the reader and the parser on a canned stream (LF and CRLF lines, a comment, an escaped text, a data field
    /// split over two lines, the usage chunk, [DONE], a trailing cut-off event), fed 1 to 7 bytes per read and whole.
    /// Throws <see cref="InvalidOperationException"/> on any difference.
    /// </summary>
    public static async Task SelfCheckAsync()
    {
        var canned = Encoding.UTF8.GetBytes(
            "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"shakespeare\",\"choices\":[{\"index\":0,\"text\":\"\\n\",\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n" +
            ": a comment\n\n" +
            "event: message\r\ndata: {\"choices\":[{\"index\":0,\"text\":\"CO\\u0052\",\"finish_reason\":null},{\"index\":1,\"text\":\"ignored\"}]}\r\n\r\n" +
            "data: {\"choices\":[{\"index\":0,\"text\":\"\",\n" +
            "data: \"finish_reason\":null}]}\n\n" +
            "data:{\"choices\":[{\"index\":0,\"text\":\"IO\",\"finish_reason\":\"length\"}],\"usage\":null}\n\n" +
            "data: {\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":57,\"completion_tokens\":5,\"total_tokens\":62}}\n\n" +
            "data: [DONE]\n\n" +
            "data: {\"cut\":");
        // One line per event: text|finish_reason|prompt/completion tokens|done.
        const string Expected = "\\n|||\nCOR|||\n|||\nIO|length||\n||57/5|\n|||done";
        for (var step = 1; step <= 8; step++)
        {
            await using var stream = new TrickleStream(canned, step == 8 ? canned.Length : step);
            await using var sse = new ServerSentEventReader(stream);
            var events = new List<string>();
            var text = new StringBuilder();
            while (await sse.MoveNextAsync(CancellationToken.None).ConfigureAwait(false))
            {
                text.Clear();
                var e = Parse(sse.Data, text);
                if (e.TextChars != text.Length)
                {
                    throw new InvalidOperationException($"SSE self-check failed at {step} bytes per read: {e.TextChars} chars counted for '{text}'");
                }
                events.Add($"{text.ToString().Replace("\n", "\\n", StringComparison.Ordinal)}|{e.FinishReason}|{(e.CompletionTokens is { } c ? $"{e.PromptTokens}/{c}" : "")}|{(e.Done ? "done" : "")}");
            }
            var got = string.Join("\n", events);
            if (got != Expected)
            {
                throw new InvalidOperationException($"SSE self-check failed at {step} bytes per read: got\n{got}\nexpected\n{Expected}");
            }
        }
        var error = Parse("{\"error\":{\"message\":\"model 'x' not found\",\"type\":\"invalid_request_error\"}}"u8);
        if (error.Error?.Contains("not found", StringComparison.Ordinal) != true)
        {
            throw new InvalidOperationException($"SSE self-check failed: an error event parsed as '{error.Error}'");
        }
    }

    /// <summary>A read-only stream over bytes that returns at most a few bytes per read (network packets cut anywhere).</summary>
    private sealed class TrickleStream(byte[] bytes, int perRead) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => bytes.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(Math.Min(perRead, buffer.Length), bytes.Length - _position);
            bytes.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
