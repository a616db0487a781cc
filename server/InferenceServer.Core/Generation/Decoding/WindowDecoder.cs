using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>
/// The decoder of models exported without a KV cache (like the samples): each step feeds every sequence's last
/// <see cref="GenerationSettings.ContextWindow"/> tokens, left-padded with the pad id, as one [batch, window] tensor
/// through the backend, with an attention mask (1 for tokens, 0 for the padding) when the model takes one, and takes
/// the logits of the last position. Older tokens slide out of the window. Works with any backend.
/// </summary>
public sealed class WindowDecoder : IDecoder
{
    private readonly IBackendModel _model;
    private readonly GenerationSettings _config;

    // The decode loop's engine run, refilled every step (one loop per decoder).
    private readonly EngineRun _run = new();
    private readonly EngineOutput _logits;

    /// <summary>Creates a decoder over one engine instance.</summary>
    public WindowDecoder(IBackendModel model, GenerationSettings config)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        _model = model;
        _config = config;
        _logits = new EngineOutput(config.LogitsName);
        _run.Outputs.Add(_logits);
    }

    /// <inheritdoc />
    public int MaxSequenceTokens => int.MaxValue;

    /// <inheritdoc />
    public (long Used, long Capacity) CacheTokens => (0, 0);

    /// <inheritdoc />
    public bool TryReserve(DecoderSequence sequence) => true;

    /// <inheritdoc />
    public (long Queries, long Hits) PrefixCacheTokens => (0, 0);

    /// <inheritdoc />
    public void Dispose() => _run.Dispose();

    /// <inheritdoc />
    public void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings)
    {
        var count = batch.Count;
        var window = _config.ContextWindow;
        var width = _config.LogitsWidth;
        using var input = Fill(_config.InputName, _config.InputType, batch, window, padding: false);
        using var mask = _config.AttentionMaskName is { } maskName ? Fill(maskName, _config.AttentionMaskType, batch, window, padding: true) : null;
        _run.Inputs.Clear();
        _run.Inputs.Add(input);
        if (mask is not null)
        {
            _run.Inputs.Add(mask);
        }
        try
        {
            _model.Execute(_run, ref timings);
        }
        finally
        {
            _run.Inputs.Clear();
        }

        using var output = _logits.TakeResult();
        var positions = LogitsRows.Check(output, _config.LogitsType, count, width);
        for (var b = 0; b < count; b++)
        {
            LogitsRows.Copy(output, b, positions, positions - 1, logits.Slice(b * width, width));
            batch[b].HasLogits = true;
        }
    }

    /// <summary>The [batch, window] ids (or, with <paramref name="padding"/>, the 1/0 mask) of the batch's windows, left-padded.</summary>
    private Tensor Fill(string name, DataType type, IReadOnlyList<DecoderSequence> batch, int window, bool padding)
    {
        var wide = type == DataType.Int64;
        var buffer = TensorBuffer.Rent(batch.Count * window * (wide ? 8 : 4));
        for (var b = 0; b < batch.Count; b++)
        {
            if (wide)
            {
                FillWindow(batch[b].Tokens, MemoryMarshal.Cast<byte, long>(buffer.Span).Slice(b * window, window), _config.PadTokenId, padding);
            }
            else
            {
                FillWindow(batch[b].Tokens, MemoryMarshal.Cast<byte, int>(buffer.Span).Slice(b * window, window), (int)_config.PadTokenId, padding);
            }
        }
        return new Tensor(name, type, [batch.Count, window], buffer);
    }

    private static void FillWindow<T>(List<int> tokens, Span<T> row, T pad, bool mask) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        var source = CollectionsMarshal.AsSpan(tokens);
        var take = Math.Min(source.Length, row.Length);
        var padding = row.Length - take;
        row[..padding].Fill(mask ? T.Zero : pad);
        var tail = source[^take..];
        for (var i = 0; i < take; i++)
        {
            row[padding + i] = mask ? T.One : T.CreateTruncating(tail[i]);
        }
    }
}
