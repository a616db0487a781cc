namespace InferenceServer.Perf.Http2;

/// <summary>
/// HPACK's static Huffman code (RFC 7541, Appendix B), typed in as data: per symbol (bytes 0–255, then EOS = 256) its
/// code aligned to the least significant bit and its length in bits. Decoding walks a binary tree built from the table
/// once; header strings are short and Kestrel does not Huffman-encode its response headers, so bit-by-bit is enough.
/// </summary>
internal static class HuffmanCode
{
    private const int Eos = 256;

    private static readonly uint[] Codes =
    [
        0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
        0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
        0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
        0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
        0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, // ' ' ! " # $ % & '
        0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, // ( ) * + , - . /
        0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, // 0-7
        0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, // 8 9 : ; < = > ?
        0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, // @ A-G
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, // H-O
        0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, // P-W
        0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, // X Y Z [ \ ] ^ _
        0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, // ` a-g
        0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, // h-o
        0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, // p-w
        0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, // x y z { | } ~ DEL
        0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, // 128
        0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, // 136
        0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, // 144
        0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, // 152
        0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, // 160
        0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, // 168
        0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, // 176
        0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, // 184
        0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, // 192
        0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, // 200
        0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, // 208
        0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, // 216
        0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, // 224
        0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, // 232
        0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, // 240
        0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, // 248
        0x3fffffff, // EOS
    ];

    private static readonly byte[] Lengths =
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
        30, // EOS
    ];

    /// <summary>
    /// The decoding tree: node n's children are <c>Tree[2n]</c> (bit 0) and <c>Tree[2n + 1]</c> (bit 1); a positive
    /// value is the next node, a negative one a leaf (<c>-1 - symbol</c>), 0 no code (node 0 is the root, never a child).
    /// </summary>
    private static readonly int[] Tree = BuildTree();

    /// <summary>
    /// Decodes <paramref name="encoded"/> into <paramref name="output"/>; returns the decoded length, or -1 when the input
    /// is not a valid Huffman string (an EOS symbol, padding longer than 7 bits or not all ones, output too small).
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> encoded, Span<byte> output)
    {
        var written = 0;
        var node = 0;
        var bitsSinceSymbol = 0;
        var allOnes = true;
        foreach (var b in encoded)
        {
            for (var shift = 7; shift >= 0; shift--)
            {
                var bit = (b >> shift) & 1;
                var next = Tree[2 * node + bit];
                bitsSinceSymbol++;
                allOnes &= bit == 1;
                if (next < 0)
                {
                    var symbol = -1 - next;
                    if (symbol == Eos || written == output.Length)
                    {
                        return -1;
                    }
                    output[written++] = (byte)symbol;
                    node = 0;
                    bitsSinceSymbol = 0;
                    allOnes = true;
                }
                else if (next == 0)
                {
                    return -1;
                }
                else
                {
                    node = next;
                }
            }
        }
        // What is left must be a prefix of EOS (all ones) shorter than a byte (RFC 7541, 5.2).
        return bitsSinceSymbol <= 7 && allOnes ? written : -1;
    }

    /// <summary>The longest a Huffman string of <paramref name="encodedLength"/> bytes can decode to (the shortest code has 5 bits).</summary>
    public static int MaxDecodedLength(int encodedLength) => encodedLength * 8 / 5 + 1;

    /// <summary>Huffman-encodes <paramref name="text"/> (for the self-check: encode then decode must round-trip).</summary>
    public static byte[] Encode(ReadOnlySpan<byte> text)
    {
        var bits = 0L;
        foreach (var b in text)
        {
            bits += Lengths[b];
        }
        var output = new byte[(bits + 7) / 8];
        ulong accumulator = 0;
        var pending = 0;
        var at = 0;
        foreach (var b in text)
        {
            accumulator = (accumulator << Lengths[b]) | Codes[b];
            pending += Lengths[b];
            while (pending >= 8)
            {
                pending -= 8;
                output[at++] = (byte)(accumulator >> pending);
            }
        }
        if (pending > 0)
        {
            // Pad with the most significant bits of EOS (ones).
            output[at] = (byte)((accumulator << (8 - pending)) | (0xFFu >> pending));
        }
        return output;
    }

    private static int[] BuildTree()
    {
        if (Codes.Length != 257 || Lengths.Length != 257)
        {
            throw new InvalidOperationException("the Huffman table must have 257 entries");
        }
        // 256 internal nodes at most for 257 leaves; each has two slots.
        var tree = new int[2 * 256];
        var nodes = 1;
        for (var symbol = 0; symbol <= Eos; symbol++)
        {
            var node = 0;
            for (var i = Lengths[symbol] - 1; i >= 0; i--)
            {
                var slot = 2 * node + (int)((Codes[symbol] >> i) & 1);
                if (i == 0)
                {
                    if (tree[slot] != 0)
                    {
                        throw new InvalidOperationException($"Huffman code of symbol {symbol} collides with another");
                    }
                    tree[slot] = -1 - symbol;
                }
                else
                {
                    if (tree[slot] < 0)
                    {
                        throw new InvalidOperationException($"Huffman code of symbol {symbol} has another code as a prefix");
                    }
                    if (tree[slot] == 0)
                    {
                        tree[slot] = nodes++;
                    }
                    node = tree[slot];
                }
            }
        }
        // A complete prefix code fills every slot (Kraft's sum is exactly 1): an empty slot means a mistyped code.
        if (nodes != 256 || Array.IndexOf(tree, 0, 0, 2 * nodes) >= 0)
        {
            throw new InvalidOperationException("the Huffman table is not a complete prefix code");
        }
        return tree;
    }
}
