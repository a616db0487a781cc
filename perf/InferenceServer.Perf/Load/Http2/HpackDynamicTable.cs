namespace InferenceServer.Perf.Http2;

/// <summary>
/// HPACK's dynamic table (RFC 7541, 2.3.2 and 4): entries newest first, each of size name + value + 32, evicted oldest
/// first to stay within the maximum size. The bytes live in one preallocated array, oldest entry first; an insert
/// that does not fit behind the newest entry moves the live entries to the front first (at most the table's size in
/// bytes, and only when the peer adds an entry, which Kestrel does for a header value it has not sent before).
/// </summary>
internal sealed class HpackDynamicTable
{
    private const int EntryOverhead = 32;

    private readonly byte[] _bytes;
    private readonly Entry[] _entries;
    private readonly int _limit;
    private int _newest = -1;
    private int _end;

    /// <param name="limit">The largest size the peer may ask for: our SETTINGS_HEADER_TABLE_SIZE.</param>
    public HpackDynamicTable(int limit)
    {
        _limit = limit;
        MaxSize = limit;
        _bytes = new byte[limit];
        _entries = new Entry[limit / EntryOverhead + 1];
    }

    public int Count { get; private set; }

    /// <summary>The sum of the entries' sizes.</summary>
    public int Size { get; private set; }

    public int MaxSize { get; private set; }

    /// <summary>Entry <paramref name="index"/> (1 = newest).</summary>
    public (ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value) Get(int index)
    {
        var e = _entries[Slot(index - 1)];
        return (_bytes.AsMemory(e.Offset, e.NameLength), _bytes.AsMemory(e.Offset + e.NameLength, e.ValueLength));
    }

    /// <summary>A dynamic table size update; false when it exceeds our SETTINGS_HEADER_TABLE_SIZE (a decoding error).</summary>
    public bool SetMaxSize(int size)
    {
        if (size < 0 || size > _limit)
        {
            return false;
        }
        MaxSize = size;
        EvictTo(size);
        return true;
    }

    /// <summary>
    /// Adds an entry. The spans must not point into this table (the caller copies a name it took from the table): an
    /// entry larger than the table empties it and is not added (RFC 7541, 4.4).
    /// </summary>
    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var size = name.Length + value.Length + EntryOverhead;
        if (size > MaxSize)
        {
            EvictTo(0);
            return;
        }
        EvictTo(MaxSize - size);
        var length = name.Length + value.Length;
        if (_end + length > _bytes.Length)
        {
            Compact();
        }
        _newest = (_newest + 1) % _entries.Length;
        _entries[_newest] = new Entry(_end, name.Length, value.Length);
        name.CopyTo(_bytes.AsSpan(_end));
        value.CopyTo(_bytes.AsSpan(_end + name.Length));
        _end += length;
        Count++;
        Size += size;
    }

    private void EvictTo(int size)
    {
        while (Size > size)
        {
            var oldest = _entries[Slot(Count - 1)];
            Size -= oldest.NameLength + oldest.ValueLength + EntryOverhead;
            Count--;
        }
        if (Count == 0)
        {
            _end = 0;
        }
    }

    /// <summary>Moves the live entries (oldest at the lowest offset, contiguous up to the end) to the start of the array.</summary>
    private void Compact()
    {
        if (Count == 0)
        {
            _end = 0;
            return;
        }
        var start = _entries[Slot(Count - 1)].Offset;
        Buffer.BlockCopy(_bytes, start, _bytes, 0, _end - start);
        for (var i = 0; i < Count; i++)
        {
            _entries[Slot(i)].Offset -= start;
        }
        _end -= start;
    }

    /// <summary>The ring slot of the entry <paramref name="age"/> inserts before the newest (0 = newest).</summary>
    private int Slot(int age) => ((_newest - age) % _entries.Length + _entries.Length) % _entries.Length;

    private struct Entry(int offset, int nameLength, int valueLength)
    {
        public int Offset = offset;
        public readonly int NameLength = nameLength;
        public readonly int ValueLength = valueLength;
    }
}
