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
/// (<see cref="KvCacheLayout.LengthsFromMask"/>, onnxruntime-genai's GroupQueryAttention). A joining sequence's prompt is computed first (in pieces of
/// <see cref="KvCachePlan.PrefillPiece"/> tokens), on its own, and then copied into the batch.
/// </summary>
public sealed class KvCacheDecoder : IDecoder
{
    private readonly IBackendModel _model;
    private readonly GenerationSettings _settings;
    private readonly KvCacheLayout _layout;
    private readonly KvCachePlan _plan;
    private readonly KvRegion[] _regions;
    private readonly KvRegion? _prefill;
    private readonly EngineRun _run = new();
    private readonly Tensor _ids;
    private readonly Tensor _mask;
    private readonly Tensor _positions;
    private readonly Tensor _useCache;
    private readonly EngineOutput _logits;
    private readonly int _piece;

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
            _regions[i] = new KvRegion(_layout, plan.RegionTokens, plan.RowsPerRegion, plan.MaxSequenceTokens);
        }
        _prefill = plan.PrefillTokens > 0 ? new KvRegion(_layout, plan.PrefillTokens, 1, plan.PrefillTokens) : null;
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
                used += region.ReservedTokens;
            }
            return (used, (long)_plan.RegionTokens * _regions.Length);
        }
    }

    /// <inheritdoc />
    public bool TryReserve(DecoderSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        var tokens = Math.Max(sequence.MaxLength, sequence.Tokens.Count + 1);
        if (tokens > _plan.MaxSequenceTokens)
        {
            return false;
        }
        foreach (var region in _regions)
        {
            if (region.TryReserve(sequence, tokens) is { } row)
            {
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
        foreach (var region in _regions)
        {
            region.Compact();
        }

        // The rows already in a region: one new token each.
        foreach (var region in _regions)
        {
            if (region.Rows.Count == 0)
            {
                continue;
            }
            Decode(region, ref timings);
            for (var i = 0; i < batch.Count; i++)
            {
                if (batch[i].DecoderState is KvRow { Index: >= 0 } row && row.Region == region)
                {
                    LogitsRows.Copy(_logits.Into!, row.Index, 1, 0, logits.Slice(i * width, width));
                    batch[i].Processed++;
                }
            }
        }

        // The joining ones: their prompts, then a place in their region.
        for (var i = 0; i < batch.Count; i++)
        {
            var sequence = batch[i];
            var row = sequence.DecoderState as KvRow
                ?? throw new InvalidOperationException("a sequence was stepped without a reservation (TryReserve)");
            if (row.Index >= 0)
            {
                continue;
            }
            var region = row.Region;
            var target = region.Rows.Count == 0 ? region : _prefill!;
            target.Start(row);
            Prefill(target, sequence, logits.Slice(i * width, width), ref timings);
            if (target != region)
            {
                region.Append(target, row);
                target.Clear();
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

    /// <summary>Computes <paramref name="sequence"/>'s prompt into the only row of <paramref name="region"/>, writing the last position's logits.</summary>
    private void Prefill(KvRegion region, DecoderSequence sequence, Span<float> logits, ref ExecutionTimings timings)
    {
        var tokens = CollectionsMarshal.AsSpan(sequence.Tokens);
        var piece = _piece;
        var done = 0;
        while (done < tokens.Length)
        {
            var count = Math.Min(piece, tokens.Length - done);
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
        sequence.Processed = tokens.Length;
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
