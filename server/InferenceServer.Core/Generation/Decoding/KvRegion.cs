using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>One sequence's place in a <see cref="KvRegion"/>: its row, how many of its tokens are cached, what it reserved.</summary>
internal sealed class KvRow(KvRegion region, int reserved, DecoderSequence sequence) : IDisposable
{
    /// <summary>The sequence whose tokens the row caches.</summary>
    public DecoderSequence Sequence { get; } = sequence;

    /// <summary>The region that holds (or will hold) the row.</summary>
    public KvRegion Region { get; } = region;

    /// <summary>The tokens reserved: the sequence's prompt plus max_tokens.</summary>
    public int Reserved { get; } = reserved;

    /// <summary>The row in the region's rectangle; -1 until its prompt has been computed and it has joined.</summary>
    public int Index { get; set; } = -1;

    /// <summary>Tokens in the cache (the row's real length; the rectangle pads it to the region's length, left or right).</summary>
    public int Length { get; set; }

    /// <summary>Whether the sequence has left (its memory is free; the row is removed before the next run).</summary>
    public bool Left { get; private set; }

    /// <summary>Frees the row's reservation at once; its rectangle row is dropped before the region's next run.</summary>
    public void Dispose()
    {
        if (!Left)
        {
            Left = true;
            Region.Release(this);
        }
    }
}

/// <summary>
/// A rectangle of KV cache in preallocated, pinned memory: <c>[rows, kv_heads, length, head_size]</c> per layer for keys
/// and values, twice (two halves): a run reads the past from the current half and the engine writes the present (past
/// plus the run's new tokens) straight into the other half through its output binding, which then becomes current.
/// Shorter rows are left-padded (zeros, masked out by <c>attention_mask</c>). Rows join after their prompt has been computed and leave between steps; the rectangle is re-laid only when its
/// length changes.
/// <para>A graph whose attention takes row lengths from the mask (<see cref="KvCacheLayout.LengthsFromMask"/>,
/// GroupQueryAttention) gets a right-padded region instead (each row's tokens from column 0), with ONE buffer per layer's keys and values, of a fixed
/// width (<see cref="Width"/>, the longest sequence it can hold): each run binds it whole, as
/// <c>[rows, kv_heads, width, head_size]</c>, as both the past input and the present output, and the kernel, seeing the
/// same memory, writes only the new tokens' keys and values at each row's length (read from the mask) — a step copies
/// no cache, and the region takes one copy of memory instead of two.</para>
/// </summary>
internal sealed class KvRegion : IDisposable
{
    private readonly KvCacheLayout _layout;
    private readonly int _elementBytes;
    private readonly int _rowsLimit;
    // Per half: the past views (inputs) and the outputs bound to the present views, by layer as key, value, key, ...
    private readonly Tensor[][] _past = new Tensor[2][];
    private readonly EngineOutput[][] _present = new EngineOutput[2][];
    private readonly TensorBuffer[][] _memory = new TensorBuffer[2][];
    private readonly List<KvRow> _rows = [];
    private int _current;
    private long _reservedRows;
    private int _reservedLongest;
    private readonly List<KvRow> _reservations = [];

    /// <param name="width">For a shared (right-padded) region, its fixed width: the longest sequence it holds.</param>
    public KvRegion(KvCacheLayout layout, int tokens, int rowsLimit, int width)
    {
        _layout = layout;
        _elementBytes = layout.CacheType.ElementSize();
        Shared = layout.LengthsFromMask;
        Width = Shared ? width : 0;
        _rowsLimit = Shared ? Math.Min(rowsLimit, tokens / Math.Max(width, 1)) : rowsLimit;
        Tokens = tokens;
        var bytes = checked(tokens * layout.KvHeads * layout.HeadSize * _elementBytes);
        for (var half = 0; half < (Shared ? 1 : 2); half++)
        {
            _memory[half] = new TensorBuffer[layout.Layers * 2];
            _past[half] = new Tensor[layout.Layers * 2];
            _present[half] = new EngineOutput[layout.Layers * 2];
            for (var l = 0; l < layout.Layers; l++)
            {
                for (var kv = 0; kv < 2; kv++)
                {
                    var at = (l * 2) + kv;
                    var memory = TensorBuffer.AllocatePinned(bytes);
                    _memory[half][at] = memory;
                    _past[half][at] = new Tensor(kv == 0 ? layout.PastKeys[l] : layout.PastValues[l], layout.CacheType, [0, layout.KvHeads, 0, layout.HeadSize], memory.Slice(0, 0));
                    var present = kv == 0 ? layout.PresentKeys[l] : layout.PresentValues[l];
                    _present[half][at] = new EngineOutput(present, new Tensor(present, layout.CacheType, [0, layout.KvHeads, 0, layout.HeadSize], memory.Slice(0, 0)));
                }
            }
        }
    }

    /// <summary>Whether past and present are one buffer (a right-padded region of fixed <see cref="Width"/>).</summary>
    public bool Shared { get; }

    /// <summary>A shared region's fixed width in tokens (0 otherwise).</summary>
    public int Width { get; }

    /// <summary>The current memory of layer cache <paramref name="at"/> (layer × 2 + 0 for keys, 1 for values), for tests.</summary>
    internal Span<byte> Memory(int at) => _memory[_current][at].Span;

    /// <summary>Tokens the rectangle holds (rows × length).</summary>
    public int Tokens { get; }

    /// <summary>The rows in the rectangle, in order.</summary>
    public IReadOnlyList<KvRow> Rows => _rows;

    /// <summary>The rectangle's length: its longest row.</summary>
    public int Length { get; private set; }

    /// <summary>Tokens reserved by the rows that have not left: rows × the longest reservation.</summary>
    public long ReservedTokens => _reservedRows * _reservedLongest;

    /// <summary>Whether no row is reserved.</summary>
    public bool IsFree => _reservedRows == 0;

    /// <summary>Reserves a row of <paramref name="tokens"/> tokens if the rectangle still fits; null when it does not.</summary>
    public KvRow? TryReserve(DecoderSequence sequence, int tokens)
    {
        var longest = Math.Max(_reservedLongest, tokens);
        if (_reservedRows >= _rowsLimit || (Shared && tokens > Width) || (_reservedRows + 1) * longest > Tokens)
        {
            return null;
        }
        var row = new KvRow(this, tokens, sequence);
        _reservations.Add(row);
        _reservedRows++;
        _reservedLongest = longest;
        return row;
    }

    /// <summary>Frees <paramref name="row"/>'s reservation (its rectangle row stays until <see cref="Compact"/>).</summary>
    public void Release(KvRow row)
    {
        if (_reservations.Remove(row))
        {
            _reservedRows--;
            _reservedLongest = 0;
            foreach (var other in _reservations)
            {
                _reservedLongest = Math.Max(_reservedLongest, other.Reserved);
            }
        }
    }

    /// <summary>
    /// Drops the rows that left, moving later rows down in place, and shortens the rectangle to its longest remaining
    /// row (a re-layout into the other half).
    /// </summary>
    public void Compact()
    {
        var kept = 0;
        var longest = 0;
        for (var i = 0; i < _rows.Count; i++)
        {
            var row = _rows[i];
            if (row.Left)
            {
                continue;
            }
            if (kept != i)
            {
                MoveRow(i, kept);
            }
            _rows[kept] = row;
            row.Index = kept++;
            longest = Math.Max(longest, row.Length);
        }
        _rows.RemoveRange(kept, _rows.Count - kept);
        if (kept == 0)
        {
            Length = 0;
        }
        else if (Shared)
        {
            Length = longest;
        }
        else if (longest < Length)
        {
            Relayout(longest);
        }
    }

    /// <summary>
    /// Binds a run of <paramref name="newTokens"/> new tokens per row: the past views of the current half as
    /// <c>[rows, heads, length, size]</c> inputs and the other half's present views as outputs of length + new tokens.
    /// </summary>
    public void Bind(EngineRun run, int newTokens)
    {
        var rows = _rows.Count;
        if (Shared)
        {
            // The same memory as input and output: the kernel appends the new tokens in place.
            for (var at = 0; at < _past[0].Length; at++)
            {
                Shape(_past[0][at], rows, Width);
                run.Inputs.Add(_past[0][at]);
                Shape(_present[0][at].Into!, rows, Width);
                run.Outputs.Add(_present[0][at]);
            }
            return;
        }
        var next = 1 - _current;
        for (var at = 0; at < _past[_current].Length; at++)
        {
            Shape(_past[_current][at], rows, Length);
            run.Inputs.Add(_past[_current][at]);
        }
        for (var at = 0; at < _present[next].Length; at++)
        {
            Shape(_present[next][at].Into!, rows, Length + newTokens);
            run.Outputs.Add(_present[next][at]);
        }
    }

    /// <summary>After a run bound with <see cref="Bind"/>: the present half becomes current and every row grew by the run's tokens.</summary>
    public void Advance(int newTokens)
    {
        foreach (var output in _present[Shared ? _current : 1 - _current])
        {
            output.Result = null;
        }
        _current = Shared ? _current : 1 - _current;
        Length += newTokens;
        foreach (var row in _rows)
        {
            row.Length += newTokens;
        }
    }

    /// <summary>Starts an empty rectangle with <paramref name="row"/> as its only row (its prompt is computed in place).</summary>
    public void Start(KvRow row)
    {
        _rows.Clear();
        Length = 0;
        row.Index = 0;
        row.Length = 0;
        _rows.Add(row);
    }

    /// <summary>
    /// Appends the only row of <paramref name="source"/> (a prefill region) as the last row, padded to this
    /// rectangle's length, or lengthening the rectangle (a re-layout) when it is longer; <paramref name="row"/> becomes that row.
    /// </summary>
    public void Append(KvRegion source, KvRow row)
    {
        var length = source.Length;
        var rows = _rows.Count;
        var heads = _layout.KvHeads;
        var block = _layout.HeadSize * _elementBytes;
        if (Shared)
        {
            // Into the row's place at the fixed width; what lies past its length is never read (the mask bounds it).
            for (var at = 0; at < _memory[0].Length; at++)
            {
                var from = source._memory[0][at].Span;
                var to = _memory[0][at].Span;
                for (var h = 0; h < heads; h++)
                {
                    var target = (((long)rows * heads) + h) * Width;
                    from.Slice(h * source.Width * block, length * block).CopyTo(to.Slice((int)(target * block), length * block));
                }
            }
            Length = Math.Max(Length, length);
            row.Index = rows;
            row.Length = length;
            _rows.Add(row);
            return;
        }
        if (length > Length)
        {
            Relayout(length);
        }
        for (var at = 0; at < _memory[_current].Length; at++)
        {
            var from = source._memory[source._current][at].Span;
            var to = _memory[_current][at].Span;
            for (var h = 0; h < heads; h++)
            {
                // Left-padded: zeros, then the row's tokens ending at the rectangle's last column.
                var start = (((long)rows * heads) + h) * Length;
                var padding = Length - length;
                to.Slice((int)(start * block), padding * block).Clear();
                from.Slice(h * length * block, length * block).CopyTo(to.Slice((int)((start + padding) * block), length * block));
            }
        }
        row.Index = rows;
        row.Length = length;
        _rows.Add(row);
    }

    /// <summary>Empties the region (a prefill region after its row was appended elsewhere).</summary>
    public void Clear()
    {
        _rows.Clear();
        Length = 0;
    }

    public void Dispose()
    {
        for (var half = 0; half < (Shared ? 1 : 2); half++)
        {
            foreach (var view in _past[half])
            {
                view.Dispose();
            }
            foreach (var output in _present[half])
            {
                output.Into!.Dispose();
            }
            foreach (var memory in _memory[half])
            {
                memory.Dispose();
            }
        }
    }

    private void Shape(Tensor view, int rows, int length)
    {
        view.Shape[0] = rows;
        view.Shape[2] = length;
        view.Data.Resize(rows * _layout.KvHeads * length * _layout.HeadSize * _elementBytes);
    }

    /// <summary>Moves row <paramref name="from"/> of the current half to row <paramref name="to"/> (lower), in place.</summary>
    private void MoveRow(int from, int to)
    {
        var rowBytes = _layout.KvHeads * (Shared ? Width : Length) * _layout.HeadSize * _elementBytes;
        foreach (var memory in _memory[_current])
        {
            var span = memory.Span;
            span.Slice(from * rowBytes, rowBytes).CopyTo(span.Slice(to * rowBytes, rowBytes));
        }
    }

    /// <summary>
    /// Copies every row into the other half at rectangle length <paramref name="length"/> (each row's tokens
    /// right-aligned, zeros before), which becomes current. A shared region is never re-laid: its width is fixed.
    /// </summary>
    private void Relayout(int length)
    {
        var next = 1 - _current;
        var heads = _layout.KvHeads;
        var block = _layout.HeadSize * _elementBytes;
        for (var at = 0; at < _memory[_current].Length; at++)
        {
            var from = _memory[_current][at].Span;
            var to = _memory[next][at].Span;
            for (var r = 0; r < _rows.Count; r++)
            {
                var real = _rows[r].Length;
                for (var h = 0; h < heads; h++)
                {
                    var source = ((((long)r * heads) + h) * Length) + Length - real;
                    var target = (((long)r * heads) + h) * length;
                    to.Slice((int)(target * block), (length - real) * block).Clear();
                    from.Slice((int)(source * block), real * block).CopyTo(to.Slice((int)((target + length - real) * block), real * block));
                }
            }
        }
        _current = next;
        Length = length;
    }
}
