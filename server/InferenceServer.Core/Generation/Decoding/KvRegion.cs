using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>Where a sequence is in the KV cache's life: admitted, reading its prompt, read and waiting for room, in the batch.</summary>
internal enum KvRowState
{
    /// <summary>Admitted (it has a place reserved in a region) but its prompt is not being read yet.</summary>
    Waiting,

    /// <summary>Its prompt is being read, chunk by chunk, in the prefill region (or in place, in a region of one row).</summary>
    Prefilling,

    /// <summary>Its prompt is read (its first token sampled); it waits in the prefill region for room in its batch region.</summary>
    Prefilled,

    /// <summary>A row of its region's rectangle: one new token per step.</summary>
    Joined,
}

/// <summary>One sequence's place in a <see cref="KvRegion"/>: its row, how many of its tokens are cached.</summary>
internal sealed class KvRow(KvRegion region, DecoderSequence sequence, long order) : IDisposable
{
    /// <summary>The sequence whose tokens the row caches.</summary>
    public DecoderSequence Sequence { get; } = sequence;

    /// <summary>The region that holds (or will hold) the row.</summary>
    public KvRegion Region { get; } = region;

    /// <summary>When the sequence was admitted (larger: newer); preemption drops the newest first.</summary>
    public long Order { get; } = order;

    /// <summary>Where the row is in its life.</summary>
    public KvRowState State { get; set; }

    /// <summary>Its row in the rectangle of the region it is computed in (the prefill region while it reads its prompt).</summary>
    public int Index { get; set; } = -1;

    /// <summary>Tokens in the cache (the row's real length; the rectangle pads it to the region's length, left or right).</summary>
    public int Length { get; set; }

    /// <summary>Whether the sequence has left (finished, cancelled or preempted): its row is removed before the next run.</summary>
    public bool Left { get; private set; }

    /// <summary>Frees the row's place at once; its rectangle row is dropped before the region's next run.</summary>
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
/// and values. Memory is taken by what the rows hold now, not by what they may reach: the rectangle grows a column per
/// step, and when its budget (<see cref="Tokens"/>) cannot give every row its next token the decoder preempts the newest
/// row (<see cref="TryGrow"/>).
/// <list type="bullet">
/// <item>Left-padded (a graph with <c>position_ids</c>): two halves; a run reads the past from the current half and the
/// engine writes the present (past plus the run's new tokens) straight into the other half through its output binding,
/// which then becomes current. Shorter rows are left-padded (zeros, masked out by <c>attention_mask</c>); the rectangle is
/// re-laid only when its length changes other than by a step.</item>
/// <item>Shared (a graph whose attention takes row lengths from the mask, <see cref="KvCacheLayout.LengthsFromMask"/>,
/// GroupQueryAttention): right-padded, each row's tokens from column 0, ONE buffer per layer's keys and values at a row
/// stride of <see cref="Width"/> tokens, bound as both the past input and the present output: the kernel, seeing the same
/// memory, writes only the new tokens at each row's length, so a step copies no cache. The width grows (by a quarter, at
/// least 16 tokens) when the longest row reaches it and shrinks when long rows leave; a region of one row keeps a fixed
/// width, its whole budget.</item>
/// </list>
/// </summary>
internal sealed class KvRegion : IDisposable
{
    private const int WidthStep = 16;
    private readonly KvCacheLayout _layout;
    private readonly int _elementBytes;
    private readonly int _rowsLimit;
    // Per half: the past views (inputs) and the outputs bound to the present views, by layer as key, value, key, ...
    private readonly Tensor[][] _past = new Tensor[2][];
    private readonly EngineOutput[][] _present = new EngineOutput[2][];
    private readonly TensorBuffer[][] _memory = new TensorBuffer[2][];
    private readonly List<KvRow> _rows = [];
    private readonly List<KvRow> _members = [];
    private readonly bool _fixedWidth;
    private int _current;
    // Rows of the rectangle that joined and have not left.
    private int _joined;

    public KvRegion(KvCacheLayout layout, int tokens, int rowsLimit)
    {
        _layout = layout;
        _elementBytes = layout.CacheType.ElementSize();
        Shared = layout.LengthsFromMask;
        _rowsLimit = rowsLimit;
        _fixedWidth = Shared && rowsLimit == 1;
        Width = _fixedWidth ? tokens : 0;
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

    /// <summary>Whether past and present are one buffer (a right-padded region of row stride <see cref="Width"/>).</summary>
    public bool Shared { get; }

    /// <summary>A shared region's row stride in tokens (0 otherwise, and 0 while a growing one is empty).</summary>
    public int Width { get; private set; }

    /// <summary>The current memory of layer cache <paramref name="at"/> (layer × 2 + 0 for keys, 1 for values), for tests.</summary>
    internal Span<byte> Memory(int at) => _memory[_current][at].Span;

    /// <summary>Tokens the rectangle may hold (rows × length, or rows × width).</summary>
    public int Tokens { get; }

    /// <summary>The rows in the rectangle, in order.</summary>
    public IReadOnlyList<KvRow> Rows => _rows;

    /// <summary>The rectangle's length: its longest row.</summary>
    public int Length { get; private set; }

    /// <summary>
    /// Tokens the rectangle's rows that have not left take now: rows × length (or rows × width). Read by other
    /// threads (the cache-usage gauge over every instance), so it reads counters, never the rows.
    /// </summary>
    public long UsedTokens => (long)Volatile.Read(ref _joined) * (Shared ? Width : Length);

    /// <summary>
    /// Admits <paramref name="sequence"/>, whose prompt (with what it already generated, after a preemption) holds
    /// <paramref name="tokens"/> tokens, when the region has a row for it and its rows, the ones still reading their prompts
    /// and it would fit at the longest of their lengths plus <paramref name="slack"/> columns (the steps the rows take
    /// while it reads its prompt); null when they would not. Rows grow after that: when they outgrow the budget, the
    /// newest is preempted.
    /// </summary>
    public KvRow? TryReserve(DecoderSequence sequence, int tokens, int slack, long order)
    {
        if (_members.Count >= _rowsLimit)
        {
            return null;
        }
        var longest = tokens + 1;
        if (_members.Count > 0)
        {
            longest = Math.Max(longest, Length + slack);
            foreach (var member in _members)
            {
                longest = Math.Max(longest, member.State == KvRowState.Joined ? member.Length + slack : member.Sequence.Tokens.Count + 1);
            }
        }
        if ((long)(_members.Count + 1) * longest > Tokens)
        {
            return null;
        }
        var row = new KvRow(this, sequence, order);
        _members.Add(row);
        return row;
    }

    /// <summary>Frees <paramref name="row"/>'s place (its rectangle row stays until <see cref="Compact"/>).</summary>
    public void Release(KvRow row)
    {
        if (_members.Remove(row) && row.State == KvRowState.Joined)
        {
            Interlocked.Decrement(ref _joined);
        }
    }

    /// <summary>A row whose prompt was read in place (a region of one row) joins: it decodes from the next step.</summary>
    public void JoinInPlace(KvRow row)
    {
        row.State = KvRowState.Joined;
        Interlocked.Increment(ref _joined);
    }

    /// <summary>The newest row of the rectangle that has not left (the one preemption drops first); null when none.</summary>
    public KvRow? Newest()
    {
        KvRow? newest = null;
        foreach (var row in _rows)
        {
            if (!row.Left && (newest is null || row.Order > newest.Order))
            {
                newest = row;
            }
        }
        return newest;
    }

    /// <summary>
    /// Drops the rows that left, moving later rows down in place (after <paramref name="leaving"/> has seen each, its
    /// memory intact), and shortens the rectangle to its longest remaining row.
    /// </summary>
    public void Compact(Action<KvRow>? leaving = null)
    {
        var kept = 0;
        var longest = 0;
        for (var i = 0; i < _rows.Count; i++)
        {
            var row = _rows[i];
            if (row.Left)
            {
                leaving?.Invoke(row);
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
            Width = _fixedWidth ? Width : 0;
        }
        else if (Shared)
        {
            Length = longest;
            // Long rows left: a narrower stride frees memory for more rows.
            if (!_fixedWidth && Width > 2 * (longest + WidthStep))
            {
                Restride(RoundUp(longest + WidthStep));
            }
        }
        else if (longest < Length)
        {
            Relayout(longest);
        }
    }

    /// <summary>Whether every row can take one more token (widening a shared region's stride when it must); false: preempt one.</summary>
    public bool TryGrow() => _rows.Count == 0 || Fit(_rows.Count, Length + 1);

    /// <summary>
    /// Binds a run of <paramref name="newTokens"/> new tokens per row: the past views of the current half as
    /// <c>[rows, heads, length, size]</c> inputs and the other half's present views as outputs of length + new tokens
    /// (a shared region: the same memory, <c>[rows, heads, width, size]</c>, both ways).
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

    /// <summary>
    /// Starts an empty rectangle with <paramref name="row"/> as its only row (its prompt is computed in place), holding
    /// <paramref name="cached"/> tokens that the caller writes through <see cref="TokenBytes"/> (a cached prefix).
    /// </summary>
    public void Start(KvRow row, int cached)
    {
        _rows.Clear();
        Length = cached;
        row.Index = 0;
        row.Length = cached;
        _rows.Add(row);
    }

    /// <summary>
    /// Appends the only row of <paramref name="source"/> (a prefill region) as the last row, padded to this rectangle's
    /// length, or lengthening the rectangle (a re-layout) when it is longer, if the rectangle can hold it and give every
    /// row its next token; false (nothing changed) when it cannot yet.
    /// </summary>
    public bool TryAppend(KvRegion source, KvRow row)
    {
        var length = source.Length;
        var rows = _rows.Count;
        if (rows >= _rowsLimit || !Fit(rows + 1, Math.Max(Length, length) + 1))
        {
            return false;
        }
        var heads = _layout.KvHeads;
        var block = _layout.HeadSize * _elementBytes;
        if (Shared)
        {
            // Into the row's place at the region's stride; what lies past its length is never read (the mask bounds it).
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
        }
        else
        {
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
        }
        row.Index = rows;
        row.Length = length;
        row.State = KvRowState.Joined;
        Interlocked.Increment(ref _joined);
        _rows.Add(row);
        return true;
    }

    /// <summary>Empties the region (a prefill region after its row joined its batch region or left).</summary>
    public void Clear()
    {
        _rows.Clear();
        Length = 0;
    }

    /// <summary>
    /// The bytes of tokens <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> of row
    /// <paramref name="index"/>, head <paramref name="head"/>, in layer cache <paramref name="at"/> (layer × 2 + 0 for
    /// keys, 1 for values) of the current memory: <c>count × head_size</c> elements, contiguous.
    /// </summary>
    public Span<byte> TokenBytes(int at, int index, int head, int first, int count)
    {
        var block = _layout.HeadSize * _elementBytes;
        var stride = Shared ? Width : Length;
        var padding = Shared ? 0 : Length - _rows[index].Length;
        var start = ((((long)index * _layout.KvHeads) + head) * stride) + padding + first;
        return _memory[_current][at].Span.Slice((int)(start * block), count * block);
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

    /// <summary>Whether <paramref name="rows"/> rows of <paramref name="length"/> tokens fit, widening a shared region's stride to hold them.</summary>
    private bool Fit(int rows, int length)
    {
        if (!Shared)
        {
            return (long)rows * length <= Tokens;
        }
        if (length <= Width)
        {
            return (long)rows * Width <= Tokens;
        }
        if (_fixedWidth)
        {
            return false;
        }
        var most = Tokens / rows;
        if (length > most)
        {
            return false;
        }
        // Grow by a quarter (at least a step) so that a run of steps does not re-lay the rows every time.
        Restride(Math.Min(most, RoundUp(Math.Max(length, Width + Math.Max(WidthStep, Width / 4)))));
        return true;
    }

    private static int RoundUp(int tokens) => (tokens + WidthStep - 1) / WidthStep * WidthStep;

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
    /// Re-lays a shared region's rows, in place, at row stride <paramref name="width"/>: each row's tokens stay at the
    /// start of its place. Wider: the last rows move first (their new places lie above the old); narrower: the first.
    /// </summary>
    private void Restride(int width)
    {
        var heads = _layout.KvHeads;
        var block = _layout.HeadSize * _elementBytes;
        var places = _rows.Count * heads;
        foreach (var memory in _memory[0])
        {
            var span = memory.Span;
            for (var i = 0; i < places; i++)
            {
                var place = width > Width ? places - 1 - i : i;
                var real = _rows[place / heads].Length * block;
                span.Slice((int)((long)place * Width * block), real).CopyTo(span.Slice((int)((long)place * width * block), real));
            }
        }
        Width = width;
    }

    /// <summary>
    /// Copies every row into the other half at rectangle length <paramref name="length"/> (each row's tokens
    /// right-aligned, zeros before), which becomes current. A shared region is re-strided instead (<see cref="Restride"/>).
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
