using System.Buffers.Binary;
using System.Text;

namespace InferenceServer.Perf.Http2;

/// <summary>
/// One gRPC unary request, encoded once: the HEADERS frame (its stream id patched in per request) with a header block of
/// literal fields without indexing and without Huffman coding (RFC 7541, 6.2.2: the server's decoder keeps no state
/// for them, so the same bytes are valid on every stream), and the body, the protobuf framed as one gRPC message.
/// </summary>
internal sealed class GrpcRequestTemplate
{
    private GrpcRequestTemplate(byte[] headersFrame, byte[] body)
    {
        HeadersFrame = headersFrame;
        Body = body;
    }

    /// <summary>The HEADERS frame (END_HEADERS, not END_STREAM: DATA follows), stream id 0 until patched at offset 5.</summary>
    public byte[] HeadersFrame { get; }

    /// <summary>The request body: compression flag 0, the message's big-endian length, the message.</summary>
    public byte[] Body { get; }

    public static GrpcRequestTemplate Create(string authority, string path, ReadOnlySpan<byte> message)
    {
        var block = new List<byte>(256);
        // Pseudo-headers first (RFC 9113, 8.3), then gRPC's required content-type and te (gRPC over HTTP/2 spec).
        Literal(block, ":method", "POST");
        Literal(block, ":scheme", "http");
        Literal(block, ":path", path);
        Literal(block, ":authority", authority);
        Literal(block, "content-type", "application/grpc");
        Literal(block, "te", "trailers");
        if (block.Count > Http2Frame.DefaultMaxFrameSize)
        {
            throw new ArgumentException("the request's header block does not fit one frame");
        }
        var frame = new byte[Http2Frame.HeaderLength + block.Count];
        Http2Frame.WriteHeader(frame, block.Count, Http2Frame.Headers, Http2Frame.EndHeaders, 0);
        block.CopyTo(frame, Http2Frame.HeaderLength);
        var body = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)message.Length);
        message.CopyTo(body.AsSpan(5));
        return new GrpcRequestTemplate(frame, body);
    }

    /// <summary>Literal header field without indexing, new name (0000 0000, then name and value as raw strings).</summary>
    private static void Literal(List<byte> block, string name, string value)
    {
        block.Add(0x00);
        String(block, Encoding.ASCII.GetBytes(name));
        String(block, Encoding.ASCII.GetBytes(value));
    }

    /// <summary>A string literal without Huffman coding: its length as an integer with a 7-bit prefix (RFC 7541, 5.1), then the bytes.</summary>
    private static void String(List<byte> block, byte[] bytes)
    {
        var length = bytes.Length;
        if (length < 0x7F)
        {
            block.Add((byte)length);
        }
        else
        {
            block.Add(0x7F);
            length -= 0x7F;
            while (length >= 0x80)
            {
                block.Add((byte)(length % 0x80 + 0x80));
                length /= 0x80;
            }
            block.Add((byte)length);
        }
        block.AddRange(bytes);
    }
}
