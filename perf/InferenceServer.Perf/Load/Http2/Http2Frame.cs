using System.Buffers.Binary;

namespace InferenceServer.Perf.Http2;

/// <summary>HTTP/2 frame types, flags, settings and error codes (RFC 9113, 6 and 7), and the 9-byte frame header.</summary>
internal static class Http2Frame
{
    public const int HeaderLength = 9;

    /// <summary>SETTINGS_MAX_FRAME_SIZE's initial value: the largest frame either side may send until told otherwise.</summary>
    public const int DefaultMaxFrameSize = 16_384;

    /// <summary>The initial flow-control window of a connection and of every stream (6.9.2).</summary>
    public const int DefaultWindow = 65_535;

    public const int MaxWindow = int.MaxValue;

    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    public const byte Data = 0, Headers = 1, Priority = 2, RstStream = 3, Settings = 4, PushPromise = 5, Ping = 6, GoAway = 7, WindowUpdate = 8, Continuation = 9;

    public const byte EndStream = 0x1, Ack = 0x1, EndHeaders = 0x4, Padded = 0x8, PriorityFlag = 0x20;

    public const ushort HeaderTableSize = 1, EnablePush = 2, MaxConcurrentStreams = 3, InitialWindowSize = 4, MaxFrameSize = 5;

    public const int NoError = 0, ProtocolError = 1, FlowControlError = 3, FrameSizeError = 6, CompressionError = 9;

    private static readonly string[] ErrorNames =
    [
        "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",
        "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
    ];

    public static string ErrorName(uint code) => code < ErrorNames.Length ? ErrorNames[code] : $"0x{code:x}";

    public static void WriteHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }

    /// <summary>A parsed frame header.</summary>
    public readonly record struct FrameHeader(int Length, byte Type, byte Flags, int StreamId)
    {
        public static FrameHeader Read(ReadOnlySpan<byte> source) =>
            new((source[0] << 16) | (source[1] << 8) | source[2], source[3], source[4], BinaryPrimitives.ReadInt32BigEndian(source[5..]) & int.MaxValue);

        public bool Has(byte flag) => (Flags & flag) != 0;
    }
}
