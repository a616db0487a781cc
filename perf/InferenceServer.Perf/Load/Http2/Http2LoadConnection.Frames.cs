using System.Buffers.Binary;
using System.Text;

namespace InferenceServer.Perf.Http2;

/// <summary>The frames the server sends, and how a call ends (RFC 9113, 6; gRPC over HTTP/2's response = headers, message, trailers).</summary>
internal sealed partial class Http2LoadConnection
{
    private static readonly string[] GrpcStatusNames = Enumerable.Range(0, 17).Select(c => $"grpc:{(global::Grpc.Core.StatusCode)c}").ToArray();

    private void OnFrame(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_continuationStream != 0 && header.Type != Http2Frame.Continuation)
        {
            ConnectionError(Http2Frame.ProtocolError, "a header block was interrupted by another frame");
            return;
        }
        switch (header.Type)
        {
            case Http2Frame.Data: OnData(header, payload); break;
            case Http2Frame.Headers: OnHeaders(header, payload); break;
            case Http2Frame.Continuation: OnContinuation(header, payload); break;
            case Http2Frame.RstStream: OnRstStream(header, payload); break;
            case Http2Frame.Settings: OnSettings(header, payload); break;
            case Http2Frame.Ping: OnPing(header, payload); break;
            case Http2Frame.GoAway: OnGoAway(payload); break;
            case Http2Frame.WindowUpdate: OnWindowUpdate(header, payload); break;
            case Http2Frame.PushPromise: ConnectionError(Http2Frame.ProtocolError, "PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0"); break;
            default: break; // PRIORITY and unknown frame types are ignored (5.3.2, 4.1).
        }
    }

    /// <summary>DATA: fed to the stream's response scan; both windows are refilled once half of them has been consumed.</summary>
    private void OnData(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0 || !TryStripPadding(header, ref payload))
        {
            ConnectionError(Http2Frame.ProtocolError, "bad DATA frame");
            return;
        }
        // Flow control counts the whole payload, padding included (6.9.1), whether or not the stream is still ours.
        _connectionConsumed += header.Length;
        if (_connectionConsumed >= ConnectionWindow / 2)
        {
            WriteWindowUpdate(0, _connectionConsumed);
            _connectionConsumed = 0;
        }
        var i = FindSlot(header.StreamId);
        if (i < 0)
        {
            return;
        }
        ref var s = ref _slots[i];
        s.Scan.Feed(payload);
        if (header.Has(Http2Frame.EndStream))
        {
            Complete(i);
            return;
        }
        s.Consumed += header.Length;
        if (s.Consumed >= StreamWindow / 2)
        {
            WriteWindowUpdate(s.StreamId, s.Consumed);
            s.Consumed = 0;
        }
    }

    private void OnHeaders(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0 || !TryStripPadding(header, ref payload))
        {
            ConnectionError(Http2Frame.ProtocolError, "bad HEADERS frame");
            return;
        }
        if (header.Has(Http2Frame.PriorityFlag))
        {
            if (payload.Length < 5)
            {
                ConnectionError(Http2Frame.FrameSizeError, "HEADERS too short for its priority");
                return;
            }
            payload = payload[5..];
        }
        if (header.Has(Http2Frame.EndHeaders))
        {
            OnHeaderBlock(header.StreamId, payload, header.Has(Http2Frame.EndStream));
            return;
        }
        // The block continues in CONTINUATION frames: keep its fragments (rare: Kestrel's blocks fit one frame).
        _headerBlockLength = 0;
        AppendHeaderBlock(payload);
        _continuationStream = header.StreamId;
        _continuationEndStream = header.Has(Http2Frame.EndStream);
    }

    private void OnContinuation(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_continuationStream == 0 || header.StreamId != _continuationStream)
        {
            ConnectionError(Http2Frame.ProtocolError, "unexpected CONTINUATION");
            return;
        }
        AppendHeaderBlock(payload);
        if (header.Has(Http2Frame.EndHeaders))
        {
            var stream = _continuationStream;
            _continuationStream = 0;
            OnHeaderBlock(stream, _headerBlock.AsSpan(0, _headerBlockLength), _continuationEndStream);
        }
    }

    private void AppendHeaderBlock(ReadOnlySpan<byte> fragment)
    {
        if (_headerBlockLength + fragment.Length > _headerBlock.Length)
        {
            Array.Resize(ref _headerBlock, Math.Max(_headerBlock.Length * 2, _headerBlockLength + fragment.Length));
        }
        fragment.CopyTo(_headerBlock.AsSpan(_headerBlockLength));
        _headerBlockLength += fragment.Length;
    }

    /// <summary>
    /// A complete header block: always decoded (it updates the connection's HPACK table even for a stream no longer
    /// tracked), its :status, grpc-status and grpc-message going to the stream's slot. The response headers carry
    /// :status; grpc-status comes in the trailers (HEADERS with END_STREAM), or in the same block for a trailers-only response.
    /// </summary>
    private void OnHeaderBlock(int streamId, ReadOnlySpan<byte> block, bool endStream)
    {
        _sinkSlot = FindSlot(streamId);
        var decoded = _hpack.TryDecode(block, this);
        var slot = _sinkSlot;
        _sinkSlot = -1;
        if (!decoded)
        {
            ConnectionError(Http2Frame.CompressionError, $"HPACK: {_hpack.Error}");
            return;
        }
        if (slot >= 0 && endStream)
        {
            Complete(slot);
        }
    }

    public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (_sinkSlot < 0)
        {
            return;
        }
        ref var s = ref _slots[_sinkSlot];
        if (name.SequenceEqual(":status"u8))
        {
            s.HttpStatus = ParseStatus(value);
        }
        else if (name.SequenceEqual("grpc-status"u8))
        {
            s.GrpcStatus = ParseStatus(value);
        }
        else if (name.SequenceEqual("grpc-message"u8))
        {
            _grpcMessageLength = Math.Min(value.Length, _grpcMessage.Length);
            value[.._grpcMessageLength].CopyTo(_grpcMessage);
            _grpcMessageStream = s.StreamId;
        }
    }

    /// <summary>A non-negative decimal status, or -2 when the value is not one.</summary>
    private static int ParseStatus(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty || value.Length > 9)
        {
            return -2;
        }
        var n = 0;
        foreach (var c in value)
        {
            if (c is < (byte)'0' or > (byte)'9')
            {
                return -2;
            }
            n = n * 10 + (c - '0');
        }
        return n;
    }

    private void OnRstStream(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0 || payload.Length != 4)
        {
            ConnectionError(Http2Frame.ProtocolError, "bad RST_STREAM frame");
            return;
        }
        var i = FindSlot(header.StreamId);
        if (i >= 0)
        {
            var code = BinaryPrimitives.ReadUInt32BigEndian(payload);
            End(i, $"http2:RST_STREAM {Http2Frame.ErrorName(code)}", "the server reset the stream");
        }
    }

    /// <summary>The server's SETTINGS: its stream limit, stream window (applied to open streams too, 6.9.2) and frame size; acknowledged at once.</summary>
    private void OnSettings(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0 || payload.Length % 6 != 0 || (header.Has(Http2Frame.Ack) && payload.Length != 0))
        {
            ConnectionError(Http2Frame.FrameSizeError, "bad SETTINGS frame");
            return;
        }
        if (header.Has(Http2Frame.Ack))
        {
            return;
        }
        for (var at = 0; at < payload.Length; at += 6)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(payload[at..]);
            var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(at + 2)..]);
            switch (id)
            {
                case Http2Frame.MaxConcurrentStreams:
                    _peerMaxConcurrentStreams = (int)Math.Min(value, int.MaxValue);
                    break;
                case Http2Frame.InitialWindowSize:
                    if (value > Http2Frame.MaxWindow)
                    {
                        ConnectionError(Http2Frame.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31 - 1");
                        return;
                    }
                    var delta = (long)value - _peerInitialWindow;
                    for (var i = 0; i < _slots.Length; i++)
                    {
                        if (_slots[i].StreamId != 0)
                        {
                            _slots[i].SendWindow += delta;
                        }
                    }
                    _peerInitialWindow = (int)value;
                    break;
                case Http2Frame.MaxFrameSize:
                    if (value < Http2Frame.DefaultMaxFrameSize || value > 16_777_215)
                    {
                        ConnectionError(Http2Frame.ProtocolError, "SETTINGS_MAX_FRAME_SIZE out of range");
                        return;
                    }
                    _peerMaxFrameSize = (int)value;
                    break;
                case Http2Frame.HeaderTableSize:
                    // The server's decoder table: WriteRequestHeaders follows a change with a size update.
                    _peerHeaderTableSize = (int)Math.Min(value, int.MaxValue);
                    break;
                default:
                    break;
            }
        }
        Reserve(Http2Frame.HeaderLength);
        Http2Frame.WriteHeader(_send.AsSpan(_sendLength), 0, Http2Frame.Settings, Http2Frame.Ack, 0);
        _sendLength += Http2Frame.HeaderLength;
        _settingsReceived = true;
    }

    private void OnPing(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0 || payload.Length != 8)
        {
            ConnectionError(Http2Frame.FrameSizeError, "bad PING frame");
            return;
        }
        if (!header.Has(Http2Frame.Ack))
        {
            Reserve(Http2Frame.HeaderLength + 8);
            Http2Frame.WriteHeader(_send.AsSpan(_sendLength), 8, Http2Frame.Ping, Http2Frame.Ack, 0);
            payload.CopyTo(_send.AsSpan(_sendLength + Http2Frame.HeaderLength));
            _sendLength += Http2Frame.HeaderLength + 8;
        }
    }

    /// <summary>GOAWAY: the streams above its last stream id were not processed and fail; the others may still finish; no new call starts.</summary>
    private void OnGoAway(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 8)
        {
            ConnectionError(Http2Frame.FrameSizeError, "bad GOAWAY frame");
            return;
        }
        var last = BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
        var code = BinaryPrimitives.ReadUInt32BigEndian(payload[4..]);
        _goAway = true;
        for (var i = 0; i < _slots.Length; i++)
        {
            if (_slots[i].StreamId > last)
            {
                End(i, $"http2:GOAWAY {Http2Frame.ErrorName(code)}", $"the server sent GOAWAY (last stream {last}): {Encoding.UTF8.GetString(payload[8..])}");
            }
        }
    }

    private void OnWindowUpdate(Http2Frame.FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (payload.Length != 4)
        {
            ConnectionError(Http2Frame.FrameSizeError, "bad WINDOW_UPDATE frame");
            return;
        }
        var increment = BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
        if (increment == 0)
        {
            ConnectionError(Http2Frame.ProtocolError, "WINDOW_UPDATE of 0");
            return;
        }
        if (header.StreamId == 0)
        {
            _connectionSendWindow += increment;
            if (_connectionSendWindow > Http2Frame.MaxWindow)
            {
                ConnectionError(Http2Frame.FlowControlError, "connection window above 2^31 - 1");
            }
            return;
        }
        var i = FindSlot(header.StreamId);
        if (i >= 0)
        {
            _slots[i].SendWindow += increment;
        }
    }

    /// <summary>Removes PADDED's pad length byte and padding; false when the padding is longer than the frame.</summary>
    private static bool TryStripPadding(Http2Frame.FrameHeader header, ref ReadOnlySpan<byte> payload)
    {
        if (!header.Has(Http2Frame.Padded))
        {
            return true;
        }
        if (payload.IsEmpty || payload[0] >= payload.Length)
        {
            return false;
        }
        payload = payload[1..(payload.Length - payload[0])];
        return true;
    }

    /// <summary>
    /// A stream ended (END_STREAM): a success only with :status 200, grpc-status 0 and a complete response message
    /// with outputs; otherwise an error counted by its status (<c>grpc:CODE</c>, <c>http:NNN</c>, <c>client:*</c>).
    /// </summary>
    private void Complete(int i)
    {
        ref var s = ref _slots[i];
        string? status = null;
        if (s.HttpStatus != 200)
        {
            status = s.HttpStatus <= 0 ? "http2:no-status" : $"http:{s.HttpStatus}";
        }
        else if (s.GrpcStatus < 0)
        {
            status = s.GrpcStatus == -1 ? "grpc:no-status" : "grpc:bad-status";
        }
        else if (s.GrpcStatus != 0)
        {
            status = s.GrpcStatus < GrpcStatusNames.Length ? GrpcStatusNames[s.GrpcStatus] : $"grpc:{s.GrpcStatus}";
        }
        else if (s.Scan.Error is not null)
        {
            status = "client:bad-response";
        }
        else if (!s.Scan.Complete || !s.Scan.HasOutputs)
        {
            status = "client:no-outputs";
        }
        if (status is null)
        {
            _recorder.Success(s.Started);
            Free(ref s);
            return;
        }
        End(i, status, null);
    }

    private void Free(ref StreamSlot s)
    {
        if (s.BodySent < _request.Body.Length)
        {
            _pendingBodies--;
        }
        s.StreamId = 0;
        _active--;
    }

    /// <summary>Ends a stream as an error; the message is built only for the connection's first error.</summary>
    private void End(int i, string status, string? message)
    {
        ref var s = ref _slots[i];
        _recorder.Error(status, _recorder.FirstError is null ? Describe(ref s, status, message) : "");
        Free(ref s);
    }

    private string Describe(ref StreamSlot s, string status, string? message)
    {
        var grpcMessage = _grpcMessageStream == s.StreamId && _grpcMessageLength > 0
            ? Uri.UnescapeDataString(Encoding.UTF8.GetString(_grpcMessage, 0, _grpcMessageLength))
            : null;
        return $"{status} on stream {s.StreamId}: {message ?? s.Scan.Error ?? $":status {s.HttpStatus}, grpc-status {s.GrpcStatus}"}{(grpcMessage is null ? "" : $", grpc-message \"{grpcMessage}\"")}";
    }
}
