using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>
/// The decoder of models exported with a KV cache (<see cref="KvCacheLayout"/>): each step feeds every running sequence
/// only its newest token, with the cached keys and values of the tokens before it, so a step costs the same at any
/// context length. The cache lives in preallocated regions (<see cref="KvCachePlan"/>) that the engine reads as its
/// past inputs and writes, through its output binding, as its present outputs; ids, mask, positions and logits go
/// through buffers allocated once. Sequences of different lengths run together left-padded, with
/// <c>attention_mask</c> and per-row <c>position_ids</c>; or right-padded, each row's tokens first and the mask's ones
/// counting its length, for a graph whose attention reads lengths from the mask
/// (<see cref="KvCacheLayout.LengthsFromMask"/>, onnxruntime-genai's GroupQueryAttention).
/// <para>An iteration (<see cref="Step"/>) computes at most <see cref="GenerationSettings.MaxNumBatchedTokens"/> tokens:
/// one for each running sequence, then a chunk of a joining sequence's prompt with what is left (chunked prefill), read in
/// the prefill region (in pieces of at most <see cref="KvCachePlan.PrefillPiece"/> tokens per run) and copied into the
/// batch once read. A prompt that starts with blocks already read is started from them (<see cref="PrefixCache"/>). The
/// rows take memory as they grow; when a step's tokens no longer fit, the newest row is preempted: its cache is dropped
/// and its tokens computed again when it is admitted again.</para>
/// </summary>
public sealed class KvCacheDecoder : IDecoder
{
    private readonly IBackendModel _model;
    private readonly GenerationSettings _settings;
    private readonly KvCacheLayout _layout;
    private readonly KvCachePlan _plan;
    private readonly KvRegion[] _regions;
    private readonly KvRegion? _prefill;
    private readonly PrefixCache? _prefixCache;
    private readonly int[] _matched;
    private readonly Action<KvRow> _leaving;
    private readonly EngineRun _run = new();
    private readonly Tensor _ids;
    private readonly Tensor _mask;
    private readonly Tensor _positions;
    private readonly Tensor _useCache;
    private readonly EngineOutput _logits;
    private readonly int _piece;
    // The sequence whose prompt is being read (or was read and waits for room); one at a time.
    private KvRow? _prefilling;
    private long _order;
    private long _prefixQueries;
    private long _prefixHits;

    /// <summary>Allocates the cache of one engine instance as <paramref name="plan"/> lays it out.</summary>
    public KvCacheDecoder(IBackendModel model, GenerationSettings settings, KvCachePlan plan)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(plan);
        _model = model;
        _settings = settings;
        _layout = plan.Layout;
        _plan = plan;
        _regions = new KvRegion[plan.Regions];
        for (var i = 0; i < _regions.Length; i++)
        {
            _regions[i] = new KvRegion(_layout, plan.RegionTokens, plan.RowsPerRegion);
        }
        _prefill = plan.PrefillTokens > 0 ? new KvRegion(_layout, plan.PrefillTokens, 1) : null;
        _prefixCache = settings.EnablePrefixCaching && new PrefixCache(_layout, settings.PrefixCacheBytes) is { Capacity: > 0 } cache ? cache : null;
        _matched = new int[(plan.MaxSequenceTokens / PrefixCache.BlockTokens) + 1];
        _leaving = Leaving;
        var maxLen = settings.MaxModelLen ?? GenerationSettings.DefaultMaxModelLen;
        _piece = Math.Min(KvCachePlan.PrefillPiece, maxLen);
        var rows = Math.Max(plan.RowsPerRegion, _piece);
        _ids = Buffer(KvCacheLayout.InputIdsName, _layout.InputIdsType, rows, 2);
        _positions = Buffer(KvCacheLayout.PositionIdsName, _layout.PositionIdsType, rows, 2);
        _mask = Buffer(KvCacheLayout.AttentionMaskName, _layout.AttentionMaskType, Math.Max((long)plan.RegionTokens + plan.RowsPerRegion, maxLen + 1), 2);
        _useCache = new Tensor(KvCacheLayout.UseCacheBranchName, DataType.Bool, [1], TensorBuffer.AllocatePinned(1));
        var logitsBytes = checked(rows * settings.LogitsWidth * settings.LogitsType.ElementSize());
        _logits = new EngineOutput(settings.LogitsName, new Tensor(settings.LogitsName, settings.LogitsType, [0, 0, settings.LogitsWidth], TensorBuffer.AllocatePinned(logitsBytes)));
    }

    /// <summary>The first region (the batch region of a padded layout), for tests.</summary>
    internal KvRegion FirstRegion => _regions[0];

    /// <summary>Sequences preempted so far (their cache dropped to make room, recomputed later).</summary>
    public long Preemptions { get; private set; }

    /// <inheritdoc />
    public int MaxSequenceTokens => _plan.MaxSequenceTokens;

    /// <inheritdoc />
    public (long Used, long Capacity) CacheTokens
    {
        get
        {
            long used = 0;
            foreach (var region in _regions)
            {
                used += region.UsedTokens;
            }
            return (used, (long)_plan.RegionTokens * _regions.Length);
        }
    }

    /// <inheritdoc />
    public (long Queries, long Hits) PrefixCacheTokens => (_prefixQueries, _prefixHits);

    /// <inheritdoc />
    public bool TryReserve(DecoderSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        var tokens = sequence.Tokens.Count;
        if (Math.Max(sequence.MaxLength, tokens + 1) > _plan.MaxSequenceTokens)
        {
            return false;
        }
        // The steps the running rows take while its prompt is read, at the chunk an iteration leaves for it.
        var slack = (tokens / Math.Max(1, _settings.MaxNumBatchedTokens - _settings.MaxRunningSequences)) + 1;
        foreach (var region in _regions)
        {
            if (region.TryReserve(sequence, tokens, slack, _order) is { } row)
            {
                _order++;
                sequence.DecoderState = row;
                return true;
            }
        }
        return false;
    }

    /// <inheritdoc />
    public void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings)
    {
        var width = _settings.LogitsWidth;
        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].HasLogits = false;
        }
        // A sequence that left while (or right after) its prompt was read frees the prefill region.
        if (_prefilling is { Left: true })
        {
            EndPrefill();
        }
        foreach (var region in _regions)
        {
            region.Compact(_leaving);
        }
        // A prompt read earlier that waited for room joins its batch now, if there is room.
        if (_prefilling is { State: KvRowState.Prefilled } read)
        {
            TryJoin(read);
        }

        // Room for every row's next token: while a region has none, its newest row is preempted.
        foreach (var region in _regions)
        {
            while (!region.TryGrow())
            {
                if (region.Rows.Count < 2 || region.Newest() is not { } newest)
                {
                    throw new InvalidOperationException("a sequence outgrew its whole region; admission bounds it by the longest sequence");
                }
                Preempt(newest);
                region.Compact(_leaving);
            }
        }

        // The rows in a region: one new token each.
        var decoded = 0;
        foreach (var region in _regions)
        {
            if (region.Rows.Count == 0 || region.Rows[0].State != KvRowState.Joined)
            {
                // Empty, or its only row is reading its prompt in place.
                continue;
            }
            Decode(region, ref timings);
            decoded += region.Rows.Count;
            for (var i = 0; i < batch.Count; i++)
            {
                if (batch[i].DecoderState is KvRow { State: KvRowState.Joined } row && row.Region == region)
                {
                    LogitsRows.Copy(_logits.Into!, row.Index, 1, 0, logits.Slice(i * width, width));
                    batch[i].Processed++;
                    batch[i].HasLogits = true;
                }
            }
        }

        // The joining ones, in order, with what is left of the iteration's budget.
        var budget = _settings.MaxNumBatchedTokens - decoded;
        while (budget > 0)
        {
            if (_prefilling is null)
            {
                if (NextJoining(batch) is not { } next)
                {
                    break;
                }
                StartPrefill(next);
            }
            var row = _prefilling!;
            if (row.State == KvRowState.Prefilled)
            {
                // Read, and waiting for room in its batch region.
                break;
            }
            var sequence = row.Sequence;
            var at = IndexOf(batch, sequence);
            budget -= Prefill(row, budget, logits.Slice(at * width, width), ref timings);
            if (sequence.Processed < sequence.Tokens.Count)
            {
                break;
            }
            sequence.HasLogits = true;
            row.State = KvRowState.Prefilled;
            _prefixCache?.Insert(CollectionsMarshal.AsSpan(sequence.Tokens), PrefillRegion(row), 0);
            if (!TryJoin(row))
            {
                break;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _run.Inputs.Clear();
        _run.Outputs.Clear();
        _run.Dispose();
        foreach (var region in _regions)
        {
            region.Dispose();
        }
        _prefill?.Dispose();
        _ids.Dispose();
        _positions.Dispose();
        _mask.Dispose();
        _useCache.Dispose();
        _logits.Into!.Dispose();
    }

    /// <summary>Where <paramref name="row"/>'s prompt is read: the prefill region, or in place in a region of one row.</summary>
    private KvRegion PrefillRegion(KvRow row) => _prefill ?? row.Region;

    /// <summary>The first sequence of the batch admitted and not started (one that was preempted has no state and is skipped).</summary>
    private static KvRow? NextJoining(IReadOnlyList<DecoderSequence> batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch[i].DecoderState is KvRow { State: KvRowState.Waiting, Left: false } row)
            {
                return row;
            }
        }
        return null;
    }

    private static int IndexOf(IReadOnlyList<DecoderSequence> batch, DecoderSequence sequence)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            if (ReferenceEquals(batch[i], sequence))
            {
                return i;
            }
        }
        throw new InvalidOperationException("the sequence whose prompt is being read is not in the batch and has not left");
    }

    /// <summary>Starts reading <paramref name="row"/>'s prompt, from the longest run of its blocks the prefix cache holds.</summary>
    private void StartPrefill(KvRow row)
    {
        var region = PrefillRegion(row);
        var tokens = CollectionsMarshal.AsSpan(row.Sequence.Tokens);
        var blocks = 0;
        if (_prefixCache is not null)
        {
            // At least the last token is computed: its logits give the next one.
            blocks = _prefixCache.Match(tokens, (tokens.Length - 1) / PrefixCache.BlockTokens, _matched);
            _prefixQueries += tokens.Length;
            _prefixHits += blocks * PrefixCache.BlockTokens;
        }
        region.Start(row, blocks * PrefixCache.BlockTokens);
        for (var b = 0; b < blocks; b++)
        {
            _prefixCache!.CopyTo(_matched[b], region, 0, b * PrefixCache.BlockTokens);
        }
        row.State = KvRowState.Prefilling;
        row.Sequence.Processed = blocks * PrefixCache.BlockTokens;
        _prefilling = row;
    }

    /// <summary>Moves a read prompt into its batch region (in place: it is there already); false when there is no room yet.</summary>
    private bool TryJoin(KvRow row)
    {
        var region = PrefillRegion(row);
        if (region == row.Region)
        {
            region.JoinInPlace(row);
        }
        else if (row.Region.TryAppend(region, row))
        {
            region.Clear();
        }
        else
        {
            return false;
        }
        _prefilling = null;
        return true;
    }

    /// <summary>Forgets the prompt being read: its sequence left. In place, the region's compaction drops the row.</summary>
    private void EndPrefill()
    {
        _prefill?.Clear();
        _prefilling = null;
    }

    /// <summary>Drops <paramref name="row"/>'s cache: its sequence is recomputed when it is admitted again.</summary>
    private void Preempt(KvRow row)
    {
        var sequence = row.Sequence;
        row.Dispose();
        sequence.DecoderState = null;
        sequence.Processed = 0;
        sequence.HasLogits = false;
        sequence.Preempted = true;
        Preemptions++;
    }

    /// <summary>A row leaving its region (finished, cancelled or preempted): its whole blocks go to the prefix cache first.</summary>
    private void Leaving(KvRow row)
    {
        var tokens = CollectionsMarshal.AsSpan(row.Sequence.Tokens);
        _prefixCache?.Insert(tokens[..Math.Min(row.Length, tokens.Length)], row.Region, row.Index);
    }

    /// <summary>One token per row of <paramref name="region"/>: the newest token of each, at its own position (right after its cached tokens).</summary>
    private void Decode(KvRegion region, ref ExecutionTimings timings)
    {
        var rows = region.Rows;
        var length = region.Length;
        Reshape(_ids, rows.Count, 1);
        Reshape(_positions, rows.Count, 1);
        Reshape(_mask, rows.Count, length + 1);
        for (var r = 0; r < rows.Count; r++)
        {
            var row = rows[r];
            Set(_ids, r, NewestToken(row));
            Set(_positions, r, row.Length);
            var start = (long)r * (length + 1);
            if (_layout.LengthsFromMask)
            {
                // Right-padded: the row's cached tokens and its new one, then padding.
                Fill(_mask, start, row.Length + 1, 1);
                Fill(_mask, start + row.Length + 1, length - row.Length, 0);
            }
            else
            {
                Fill(_mask, start, length - row.Length, 0);
                Fill(_mask, start + length - row.Length, row.Length + 1, 1);
            }
        }
        Run(region, 1, rows.Count, ref timings);
    }

    /// <summary>
    /// Reads up to <paramref name="budget"/> more of <paramref name="row"/>'s prompt into its prefill region, writing the
    /// last position's logits when the prompt is done; returns the tokens computed.
    /// </summary>
    private int Prefill(KvRow row, int budget, Span<float> logits, ref ExecutionTimings timings)
    {
        var region = PrefillRegion(row);
        var sequence = row.Sequence;
        var tokens = CollectionsMarshal.AsSpan(sequence.Tokens);
        var done = sequence.Processed;
        var end = done + Math.Min(budget, tokens.Length - done);
        var computed = end - done;
        while (done < end)
        {
            var count = Math.Min(_piece, end - done);
            Reshape(_ids, 1, count);
            Reshape(_positions, 1, count);
            Reshape(_mask, 1, done + count);
            for (var t = 0; t < count; t++)
            {
                Set(_ids, t, tokens[done + t]);
                Set(_positions, t, done + t);
            }
            Fill(_mask, 0, done + count, 1);
            Run(region, count, 1, ref timings);
            done += count;
            if (done == tokens.Length)
            {
                LogitsRows.Copy(_logits.Into!, 0, count, count - 1, logits);
            }
        }
        sequence.Processed = done;
        return computed;
    }

    private void Run(KvRegion region, int newTokens, int rows, ref ExecutionTimings timings)
    {
        _run.Inputs.Clear();
        _run.Outputs.Clear();
        _run.Inputs.Add(_ids);
        _run.Inputs.Add(_mask);
        if (_layout.HasPositionIds)
        {
            _run.Inputs.Add(_positions);
        }
        if (_layout.HasUseCacheBranch)
        {
            _useCache.Data.Span[0] = region.Length > 0 ? (byte)1 : (byte)0;
            _run.Inputs.Add(_useCache);
        }
        var logits = _logits.Into!;
        logits.Shape[0] = rows;
        logits.Shape[1] = newTokens;
        logits.Data.Resize(rows * newTokens * _settings.LogitsWidth * _settings.LogitsType.ElementSize());
        _run.Outputs.Add(_logits);
        region.Bind(_run, newTokens);
        try
        {
            _model.Execute(_run, ref timings);
        }
        finally
        {
            _logits.Result = null;
        }
        region.Advance(newTokens);
    }

    /// <summary>The token a row feeds next: the first one its cache does not hold yet (the one sampled last step).</summary>
    private static int NewestToken(KvRow row)
    {
        var tokens = row.Sequence.Tokens;
        if (tokens.Count != row.Length + 1)
        {
            throw new InvalidOperationException($"a cached sequence has {tokens.Count} tokens for {row.Length} cached; one new token per step is expected");
        }
        return tokens[row.Length];
    }

    private static Tensor Buffer(string name, DataType type, long elements, int rank)
    {
        var shape = new long[rank];
        return new Tensor(name, type, shape, TensorBuffer.AllocatePinned(checked((int)(elements * type.ElementSize()))));
    }

    private static void Reshape(Tensor tensor, int rows, int columns)
    {
        tensor.Shape[0] = rows;
        tensor.Shape[1] = columns;
        tensor.Data.Resize(rows * columns * tensor.DataType.ElementSize());
    }

    private static void Set(Tensor tensor, int index, long value)
    {
        if (tensor.DataType == DataType.Int64)
        {
            MemoryMarshal.Cast<byte, long>(tensor.Data.Span)[index] = value;
        }
        else
        {
            MemoryMarshal.Cast<byte, int>(tensor.Data.Span)[index] = (int)value;
        }
    }

    private static void Fill(Tensor tensor, long start, int count, long value)
    {
        if (tensor.DataType == DataType.Int64)
        {
            MemoryMarshal.Cast<byte, long>(tensor.Data.Span).Slice((int)start, count).Fill(value);
        }
        else
        {
            MemoryMarshal.Cast<byte, int>(tensor.Data.Span).Slice((int)start, count).Fill((int)value);
        }
    }
}
