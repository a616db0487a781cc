using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace InferenceServer.Perf.Http2;

/// <summary>
/// One HTTP/2 connection (h2c with prior knowledge, RFC 9113, 3.3) that keeps up to <c>streams</c> gRPC unary calls of
/// one prepared request in flight, closed loop, as h2load does: a dedicated thread reads with blocking receives, handles
/// every complete frame in what arrived, starts a new call for every stream that ended, and writes all that in one send.
/// Nothing is allocated per call: the request's frames are copied from a template, each stream's state is a struct in
/// a fixed array of slots (a stream is found by a scan over at most <c>streams</c> slots), the buffers are
/// preallocated; only errors allocate (their status and message). This file: opening, the loop, sending; the frames
/// received are handled in <c>Http2LoadConnection.Frames.cs</c>.
/// </summary>
internal sealed partial class Http2LoadConnection : IHeaderSink, IDisposable
{
    /// <summary>The stream window we advertise (SETTINGS_INITIAL_WINDOW_SIZE): a 7 MB response needs no update.</summary>
    private const int StreamWindow = 16 << 20;

    /// <summary>The connection window we raise ours to at the start; refilled whenever half of it has been consumed.</summary>
    private const int ConnectionWindow = 64 << 20;

    /// <summary>SETTINGS_HEADER_TABLE_SIZE's default: the most the server's encoder may use (we do not change it), and the most ours uses.</summary>
    private const int DefaultHeaderTableSize = 4096;

    /// <summary>Client stream ids are odd and increasing up to 2^31 - 1; a connection that runs out stops starting calls.</summary>
    private const int LastStreamId = int.MaxValue;

    private readonly Socket _socket;
    private readonly GrpcRequestTemplate _request;
    private readonly StreamSlot[] _slots;
    private readonly HpackDecoder _hpack = new(DefaultHeaderTableSize);
    private readonly byte[] _receive = new byte[256 * 1024];
    private readonly byte[] _send = new byte[256 * 1024];
    private byte[] _headerBlock = new byte[16 * 1024];
    private readonly byte[] _grpcMessage = new byte[512];
    private int _received;
    private int _sendLength;
    private int _headerBlockLength;
    private int _continuationStream;
    private bool _continuationEndStream;
    private int _grpcMessageLength;
    private int _grpcMessageStream;
    private int _nextStreamId = 1;
    private int _active;
    private int _pendingBodies;
    private int _sinkSlot = -1;
    private int _peerMaxConcurrentStreams = int.MaxValue;
    private int _peerInitialWindow = Http2Frame.DefaultWindow;
    private int _peerMaxFrameSize = Http2Frame.DefaultMaxFrameSize;
    private long _connectionSendWindow = Http2Frame.DefaultWindow;
    private int _connectionConsumed;
    private int _peerHeaderTableSize = DefaultHeaderTableSize;
    private int _encoderTableSize = DefaultHeaderTableSize;
    private bool _entriesInserted;
    private bool _settingsReceived;
    private bool _draining;
    private bool _goAway;
    private bool _failed;
    private Recorder _recorder = new(0);
    private LoadLoop.Window? _window;

    private Http2LoadConnection(Socket socket, GrpcRequestTemplate request, int streams)
    {
        _socket = socket;
        _request = request;
        _slots = new StreamSlot[streams];
    }

    /// <summary>One stream's state; <see cref="StreamId"/> 0 marks a free slot.</summary>
    private struct StreamSlot
    {
        public int StreamId;
        public long Started;
        public int BodySent;
        public long SendWindow;
        public int Consumed;
        public int HttpStatus;
        public int GrpcStatus;
        public GrpcResponseScan Scan;
    }

    /// <summary>
    /// Connects, sends the connection preface, our SETTINGS and the connection window's update, and waits for the
    /// server's SETTINGS (its stream limit and windows apply before the first call). Blocking.
    /// </summary>
    public static Http2LoadConnection Open(EndPoint endpoint, GrpcRequestTemplate request, int streams)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = (int)LoadLoop.RequestTimeout.TotalMilliseconds };
        var connection = new Http2LoadConnection(socket, request, streams);
        try
        {
            socket.Connect(endpoint);
            connection.WritePreface();
            connection.Flush();
            while (!connection._settingsReceived && !connection._failed)
            {
                connection.ReceiveOnce();
            }
            if (connection._failed)
            {
                throw new IOException($"HTTP/2 connection to {endpoint} failed before the server's SETTINGS: {connection._recorder.FirstError}");
            }
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Runs the closed loop on a thread of its own until the window closes and every call has ended.</summary>
    public Task<Recorder> RunOnThread(LoadLoop.Window window, Recorder recorder, string name)
    {
        var done = new TaskCompletionSource<Recorder>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                Run(window, recorder);
                done.SetResult(recorder);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                done.SetException(e);
            }
        }) { IsBackground = true, Name = name };
        thread.Start();
        return done.Task;
    }

    private void Run(LoadLoop.Window window, Recorder recorder)
    {
        _window = window;
        _recorder = recorder;
        while (true)
        {
            if (!_failed)
            {
                StartStreams();
                PumpBodies();
                Flush();
            }
            if (_active == 0 && (_draining || _goAway || _failed))
            {
                break;
            }
            ReceiveOnce();
        }
        if (!_failed)
        {
            // Tell the server we are done (no stream of ours is open), so that it does not log an aborted connection.
            WriteGoAway(0, Http2Frame.NoError);
            Flush();
        }
    }

    /// <summary>Starts a call on every free slot while the measurement's window is open and the server's stream limit allows.</summary>
    private void StartStreams()
    {
        var limit = Math.Min(_slots.Length, _peerMaxConcurrentStreams);
        while (!_draining && !_goAway && _active < limit)
        {
            if (_nextStreamId > LastStreamId - 2 || !_window!.TryBegin())
            {
                _draining = true;
                return;
            }
            var i = FreeSlot();
            ref var s = ref _slots[i];
            s = default;
            s.StreamId = _nextStreamId;
            s.GrpcStatus = -1;
            s.SendWindow = _peerInitialWindow;
            s.Started = Stopwatch.GetTimestamp();
            _nextStreamId += 2;
            _active++;
            WriteRequestHeaders(s.StreamId);
            _pendingBodies++;
            SendBody(ref s);
        }
    }

    /// <summary>
    /// The request's HEADERS frame (END_HEADERS; DATA follows). The first request inserts its four headers into the
    /// server's dynamic table and the later ones index them; a change of the server's SETTINGS_HEADER_TABLE_SIZE is
    /// answered with a dynamic table size update at the start of the next block (RFC 7541, 4.2), and a table too small
    /// for the entries gets literals without indexing.
    /// </summary>
    private void WriteRequestHeaders(int streamId)
    {
        Span<byte> update = stackalloc byte[8];
        var updateLength = 0;
        var desired = Math.Min(_peerHeaderTableSize, DefaultHeaderTableSize);
        if (desired != _encoderTableSize)
        {
            updateLength = GrpcRequestTemplate.WriteInteger(update, 0x20, 5, desired);
            _encoderTableSize = desired;
            // Our entries are the only ones in the table: a size that still holds them keeps them.
            _entriesInserted &= desired >= _request.IndexedEntriesSize;
        }
        var block = _encoderTableSize < _request.IndexedEntriesSize ? _request.LiteralBlock
            : _entriesInserted ? _request.IndexedBlock
            : _request.InsertingBlock;
        _entriesInserted |= _encoderTableSize >= _request.IndexedEntriesSize;
        var length = updateLength + block.Length;
        Reserve(Http2Frame.HeaderLength + length);
        Http2Frame.WriteHeader(_send.AsSpan(_sendLength), length, Http2Frame.Headers, Http2Frame.EndHeaders, streamId);
        update[..updateLength].CopyTo(_send.AsSpan(_sendLength + Http2Frame.HeaderLength));
        block.CopyTo(_send.AsSpan(_sendLength + Http2Frame.HeaderLength + updateLength));
        _sendLength += Http2Frame.HeaderLength + length;
    }

    /// <summary>Sends as much of a stream's body as the peer's frame size and both flow-control windows allow.</summary>
    private void SendBody(ref StreamSlot s)
    {
        var body = _request.Body;
        while (s.BodySent < body.Length)
        {
            var chunk = (int)Math.Min(Math.Min(body.Length - s.BodySent, _peerMaxFrameSize), Math.Min(Math.Min(_connectionSendWindow, s.SendWindow), _send.Length - Http2Frame.HeaderLength));
            if (chunk <= 0)
            {
                return;
            }
            Reserve(Http2Frame.HeaderLength + chunk);
            var last = s.BodySent + chunk == body.Length;
            Http2Frame.WriteHeader(_send.AsSpan(_sendLength), chunk, Http2Frame.Data, last ? Http2Frame.EndStream : (byte)0, s.StreamId);
            body.AsSpan(s.BodySent, chunk).CopyTo(_send.AsSpan(_sendLength + Http2Frame.HeaderLength));
            _sendLength += Http2Frame.HeaderLength + chunk;
            s.BodySent += chunk;
            s.SendWindow -= chunk;
            _connectionSendWindow -= chunk;
            if (last)
            {
                _pendingBodies--;
            }
        }
    }

    /// <summary>Continues the bodies that waited for a window update (large requests only).</summary>
    private void PumpBodies()
    {
        for (var i = 0; i < _slots.Length && _pendingBodies > 0 && _connectionSendWindow > 0; i++)
        {
            ref var s = ref _slots[i];
            if (s.StreamId != 0 && s.BodySent < _request.Body.Length)
            {
                SendBody(ref s);
            }
        }
    }

    private int FreeSlot()
    {
        for (var i = 0; i < _slots.Length; i++)
        {
            if (_slots[i].StreamId == 0)
            {
                return i;
            }
        }
        throw new InvalidOperationException("no free stream slot although fewer streams than slots are active");
    }

    private int FindSlot(int streamId)
    {
        if (streamId != 0)
        {
            for (var i = 0; i < _slots.Length; i++)
            {
                if (_slots[i].StreamId == streamId)
                {
                    return i;
                }
            }
        }
        return -1;
    }

    /// <summary>One blocking receive, then every complete frame in the buffer; a partial frame stays for the next receive.</summary>
    private void ReceiveOnce()
    {
        int n;
        try
        {
            n = _socket.Receive(_receive, _received, _receive.Length - _received, SocketFlags.None);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            FailConnection("timeout", $"no data from the server for {LoadLoop.RequestTimeout.TotalSeconds:F0} s");
            return;
        }
        catch (SocketException e)
        {
            FailConnection("http2:connection-closed", e.Message);
            return;
        }
        if (n == 0)
        {
            FailConnection("http2:connection-closed", "the server closed the connection");
            return;
        }
        _received += n;
        var pos = 0;
        while (_received - pos >= Http2Frame.HeaderLength && !_failed)
        {
            var header = Http2Frame.FrameHeader.Read(_receive.AsSpan(pos));
            if (header.Length > Http2Frame.DefaultMaxFrameSize)
            {
                // We never raise SETTINGS_MAX_FRAME_SIZE, so the server may not send more.
                ConnectionError(Http2Frame.FrameSizeError, $"a frame of {header.Length} bytes");
                return;
            }
            if (_received - pos - Http2Frame.HeaderLength < header.Length)
            {
                break;
            }
            OnFrame(header, _receive.AsSpan(pos + Http2Frame.HeaderLength, header.Length));
            pos += Http2Frame.HeaderLength + header.Length;
        }
        if (pos > 0)
        {
            Buffer.BlockCopy(_receive, pos, _receive, 0, _received - pos);
            _received -= pos;
        }
    }

    private void WritePreface()
    {
        Http2Frame.Preface.CopyTo(_send);
        _sendLength = Http2Frame.Preface.Length;
        // SETTINGS: no server push; our stream window. SETTINGS_MAX_FRAME_SIZE and the header table stay at their defaults.
        Http2Frame.WriteHeader(_send.AsSpan(_sendLength), 12, Http2Frame.Settings, 0, 0);
        _sendLength += Http2Frame.HeaderLength;
        WriteSetting(Http2Frame.EnablePush, 0);
        WriteSetting(Http2Frame.InitialWindowSize, StreamWindow);
        WriteWindowUpdate(0, ConnectionWindow - Http2Frame.DefaultWindow);
    }

    private void WriteSetting(ushort id, int value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(_send.AsSpan(_sendLength), id);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(_send.AsSpan(_sendLength + 2), value);
        _sendLength += 6;
    }

    private void WriteWindowUpdate(int streamId, int increment)
    {
        Reserve(Http2Frame.HeaderLength + 4);
        Http2Frame.WriteHeader(_send.AsSpan(_sendLength), 4, Http2Frame.WindowUpdate, 0, streamId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(_send.AsSpan(_sendLength + Http2Frame.HeaderLength), increment);
        _sendLength += Http2Frame.HeaderLength + 4;
    }

    private void WriteGoAway(int lastStreamId, int errorCode)
    {
        Reserve(Http2Frame.HeaderLength + 8);
        Http2Frame.WriteHeader(_send.AsSpan(_sendLength), 8, Http2Frame.GoAway, 0, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(_send.AsSpan(_sendLength + Http2Frame.HeaderLength), lastStreamId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(_send.AsSpan(_sendLength + Http2Frame.HeaderLength + 4), errorCode);
        _sendLength += Http2Frame.HeaderLength + 8;
    }

    /// <summary>Makes room for <paramref name="bytes"/> in the send buffer, sending what is in it first if needed.</summary>
    private void Reserve(int bytes)
    {
        if (_sendLength + bytes > _send.Length)
        {
            Flush();
        }
    }

    private void Flush()
    {
        var sent = 0;
        try
        {
            while (sent < _sendLength)
            {
                sent += _socket.Send(_send, sent, _sendLength - sent, SocketFlags.None);
            }
        }
        catch (SocketException e)
        {
            _sendLength = 0;
            FailConnection("http2:connection-closed", e.Message);
            return;
        }
        _sendLength = 0;
    }

    /// <summary>A connection error we detected: GOAWAY with its code (best effort), then every open call fails.</summary>
    private void ConnectionError(int code, string message)
    {
        var status = $"http2:{Http2Frame.ErrorName((uint)code)}";
        // A client's GOAWAY names the last server-initiated stream it processed: none.
        WriteGoAway(0, code);
        Flush();
        FailConnection(status, message);
    }

    /// <summary>The connection is unusable: every open call counts as an error under <paramref name="status"/>, no new call starts.</summary>
    private void FailConnection(string status, string message)
    {
        if (_failed)
        {
            return;
        }
        _failed = true;
        for (var i = 0; i < _slots.Length; i++)
        {
            if (_slots[i].StreamId != 0)
            {
                _recorder.Error(status, message);
                _slots[i].StreamId = 0;
            }
        }
        if (_window is null)
        {
            // Still opening (no call yet): keep the reason for Open's exception.
            _recorder.Error(status, message);
        }
        _active = 0;
        _pendingBodies = 0;
    }

    public void Dispose() => _socket.Dispose();
}
