namespace InferenceServer.Perf.Http2;

/// <summary>Receives the header fields of one decoded header block, in order. The spans are valid only during the call.</summary>
internal interface IHeaderSink
{
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>
/// An HPACK decoder (RFC 7541): indexed fields, literals with and without indexing (and never indexed), dynamic table
/// size updates, Huffman-coded strings. One per connection: the dynamic table is the connection's state, so every
/// header block must pass through it in the order received, including blocks of streams the client no longer tracks.
/// Allocation-free except when a string is longer than any seen before (the scratch buffers grow).
/// </summary>
internal sealed class HpackDecoder(int maxTableSize)
{
    private readonly HpackDynamicTable _table = new(maxTableSize);
    private byte[] _nameScratch = new byte[256];
    private byte[] _valueScratch = new byte[1024];

    /// <summary>What was wrong with the last block that failed to decode (a connection error: COMPRESSION_ERROR).</summary>
    public string? Error { get; private set; }

    public HpackDynamicTable Table => _table;

    /// <summary>Decodes one complete header block; false (and <see cref="Error"/>) when it is malformed.</summary>
    public bool TryDecode(ReadOnlySpan<byte> block, IHeaderSink sink)
    {
        var pos = 0;
        var fieldSeen = false;
        while (pos < block.Length)
        {
            var first = block[pos];
            if ((first & 0x80) != 0)
            {
                // Indexed header field (6.1).
                if (!TryInteger(block, ref pos, 7, out var index) || !TryEntry(index, out var name, out var value))
                {
                    return Fail("bad indexed header field");
                }
                sink.OnHeader(name, value);
                fieldSeen = true;
            }
            else if ((first & 0x20) != 0 && (first & 0x40) == 0)
            {
                // Dynamic table size update (6.3): only at the start of a block, never above our setting.
                if (fieldSeen || !TryInteger(block, ref pos, 5, out var size) || !_table.SetMaxSize(size))
                {
                    return Fail("bad dynamic table size update");
                }
            }
            else
            {
                // Literal with incremental indexing (6.2.1, 01xxxxxx, 6-bit index), or without indexing (0000xxxx) or
                // never indexed (0001xxxx), both with a 4-bit index.
                var indexing = (first & 0x40) != 0;
                if (!TryInteger(block, ref pos, indexing ? 6 : 4, out var index))
                {
                    return Fail("truncated literal header field");
                }
                ReadOnlySpan<byte> name;
                if (index == 0)
                {
                    if (!TryString(block, ref pos, ref _nameScratch, out name))
                    {
                        return Fail("bad literal header name");
                    }
                }
                else if (!TryEntry(index, out name, out _))
                {
                    return Fail("bad header name index");
                }
                else if (indexing && index > HpackStaticTable.Count)
                {
                    // Adding the entry may evict the one this name lives in: copy it out of the table first.
                    EnsureCapacity(ref _nameScratch, name.Length);
                    name.CopyTo(_nameScratch);
                    name = _nameScratch.AsSpan(0, name.Length);
                }
                if (!TryString(block, ref pos, ref _valueScratch, out var value))
                {
                    return Fail("bad literal header value");
                }
                sink.OnHeader(name, value);
                if (indexing)
                {
                    _table.Add(name, value);
                }
                fieldSeen = true;
            }
        }
        return true;
    }

    private bool Fail(string error)
    {
        Error = error;
        return false;
    }

    /// <summary>Static entries 1–61, then the dynamic table newest first.</summary>
    private bool TryEntry(int index, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        if (index >= 1 && index <= HpackStaticTable.Count)
        {
            var (n, v) = HpackStaticTable.Get(index);
            name = n;
            value = v;
            return true;
        }
        var dynamic = index - HpackStaticTable.Count;
        if (dynamic >= 1 && dynamic <= _table.Count)
        {
            var (n, v) = _table.Get(dynamic);
            name = n.Span;
            value = v.Span;
            return true;
        }
        name = value = default;
        return false;
    }

    /// <summary>An integer with an N-bit prefix (5.1); bounded to 2^28 so that it cannot overflow.</summary>
    internal static bool TryInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits, out int value)
    {
        var mask = (1 << prefixBits) - 1;
        value = block[pos++] & mask;
        if (value < mask)
        {
            return true;
        }
        for (var shift = 0; shift <= 21; shift += 7)
        {
            if (pos >= block.Length)
            {
                return false;
            }
            var b = block[pos++];
            value += (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A string literal (5.2): the raw bytes in the block, or Huffman-decoded into <paramref name="scratch"/>.</summary>
    private static bool TryString(ReadOnlySpan<byte> block, scoped ref int pos, ref byte[] scratch, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (pos >= block.Length)
        {
            return false;
        }
        var huffman = (block[pos] & 0x80) != 0;
        if (!TryInteger(block, ref pos, 7, out var length) || length > block.Length - pos)
        {
            return false;
        }
        var raw = block.Slice(pos, length);
        pos += length;
        if (!huffman)
        {
            value = raw;
            return true;
        }
        EnsureCapacity(ref scratch, HuffmanCode.MaxDecodedLength(length));
        var decoded = HuffmanCode.Decode(raw, scratch);
        if (decoded < 0)
        {
            return false;
        }
        value = scratch.AsSpan(0, decoded);
        return true;
    }

    private static void EnsureCapacity(ref byte[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new byte[Math.Max(length, buffer.Length * 2)];
        }
    }
}
