using System.Buffers.Binary;
using System.Text;

namespace InferenceServer.Perf.Http2;

/// <summary>
/// One gRPC unary request, encoded once: its header blocks and its body (the protobuf framed as one gRPC message).
/// The headers are :method POST, :scheme http, :path, :authority, content-type application/grpc and te trailers
/// (pseudo-headers first, RFC 9113, 8.3), in three precomputed HPACK blocks (RFC 7541, 6), none Huffman-coded:
/// <list type="bullet">
/// <item><see cref="InsertingBlock"/>, a connection's first request: :method and :scheme indexed from the static
/// table, the other four as literals with incremental indexing, which adds them to the server's dynamic table;</item>
/// <item><see cref="IndexedBlock"/>, every later request: six indexed fields (six bytes), as h2load (nghttp2) sends its
/// repeated headers, so that the server decodes the same few bytes per request whichever client it serves;</item>
/// <item><see cref="LiteralBlock"/>: literals without indexing, for a server whose table is too small for the four entries.</item>
/// </list>
/// </summary>
internal sealed class GrpcRequestTemplate
{
    private const int EntryOverhead = 32;

    private GrpcRequestTemplate(byte[] inserting, byte[] indexed, byte[] literal, int entriesSize, byte[] body)
    {
        InsertingBlock = inserting;
        IndexedBlock = indexed;
        LiteralBlock = literal;
        IndexedEntriesSize = entriesSize;
        Body = body;
    }

    public byte[] InsertingBlock { get; }

    public byte[] IndexedBlock { get; }

    public byte[] LiteralBlock { get; }

    /// <summary>The dynamic table space the four inserted entries take (name + value + 32 each).</summary>
    public int IndexedEntriesSize { get; }

    /// <summary>The request body: compression flag 0, the message's big-endian length, the message.</summary>
    public byte[] Body { get; }

    public static GrpcRequestTemplate Create(string authority, string path, ReadOnlySpan<byte> message)
    {
        // The static table's :method POST (3) and :scheme http (6); the names of :path (4), :authority (1) and content-type (31).
        (int NameIndex, string Name, string Value)[] inserted =
        [
            (4, ":path", path), (1, ":authority", authority), (31, "content-type", "application/grpc"), (0, "te", "trailers"),
        ];
        var inserting = new List<byte> { 0x80 | 3, 0x80 | 6 };
        var literal = new List<byte>();
        Literal(literal, ":method", "POST");
        Literal(literal, ":scheme", "http");
        foreach (var (nameIndex, name, value) in inserted)
        {
            // Literal with incremental indexing (01, 6-bit name index; 0 = a new name follows).
            Integer(inserting, 0x40, 6, nameIndex);
            if (nameIndex == 0)
            {
                String(inserting, name);
            }
            String(inserting, value);
            Literal(literal, name, value);
        }
        // After the four inserts the newest (te) is dynamic index 62 and the oldest (:path) 65.
        var indexed = new List<byte> { 0x80 | 3, 0x80 | 6 };
        for (var age = inserted.Length - 1; age >= 0; age--)
        {
            Integer(indexed, 0x80, 7, HpackStaticTable.Count + 1 + age);
        }
        var entriesSize = inserted.Sum(h => Encoding.ASCII.GetByteCount(h.Name) + Encoding.ASCII.GetByteCount(h.Value) + EntryOverhead);
        var body = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)message.Length);
        message.CopyTo(body.AsSpan(5));
        var template = new GrpcRequestTemplate([.. inserting], [.. indexed], [.. literal], entriesSize, body);
        if (template.LiteralBlock.Length + 8 > Http2Frame.DefaultMaxFrameSize)
        {
            throw new ArgumentException("the request's header block does not fit one frame");
        }
        return template;
    }

    /// <summary>Literal header field without indexing, new name (0000 0000, then name and value as raw strings).</summary>
    private static void Literal(List<byte> block, string name, string value)
    {
        block.Add(0x00);
        String(block, name);
        String(block, value);
    }

    /// <summary>A string literal without Huffman coding: its length as an integer with a 7-bit prefix, then the bytes.</summary>
    private static void String(List<byte> block, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Integer(block, 0x00, 7, bytes.Length);
        block.AddRange(bytes);
    }

    /// <summary>An integer with an N-bit prefix (RFC 7541, 5.1) after the pattern bits <paramref name="flags"/>.</summary>
    public static void Integer(List<byte> block, byte flags, int prefixBits, int value)
    {
        Span<byte> buffer = stackalloc byte[8];
        var n = WriteInteger(buffer, flags, prefixBits, value);
        foreach (var b in buffer[..n])
        {
            block.Add(b);
        }
    }

    /// <summary>Writes an integer with an N-bit prefix; returns the bytes written.</summary>
    public static int WriteInteger(Span<byte> destination, byte flags, int prefixBits, int value)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }
        destination[0] = (byte)(flags | max);
        value -= max;
        var n = 1;
        while (value >= 0x80)
        {
            destination[n++] = (byte)(value % 0x80 + 0x80);
            value /= 0x80;
        }
        destination[n++] = (byte)value;
        return n;
    }
}
