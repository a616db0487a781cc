using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>What a decoder sees of one sequence: its tokens so far and a slot for state it keeps between steps.</summary>
public abstract class DecoderSequence
{
    /// <summary>The prompt's tokens followed by the generated ones.</summary>
    public List<int> Tokens { get; } = [];

    /// <summary>
    /// How many of <see cref="Tokens"/> the decoder's own state already covers. A decoder with a KV cache feeds only the
    /// tokens after this and advances it; the window decoder recomputes the window every step and leaves it at 0.
    /// </summary>
    public int Processed { get; set; }

    /// <summary>Per-sequence decoder state (a KV cache); disposed when the sequence leaves the batch.</summary>
    public IDisposable? DecoderState { get; set; }
}

/// <summary>
/// One decode step over a batch (vLLM's "engine"): next-token logits for every running sequence. The continuous
/// batcher decides who is in the batch; the decoder only computes.
/// </summary>
public interface IDecoder
{
    /// <summary>
    /// Writes the next-token logits of <paramref name="batch"/>[i] to row i of <paramref name="logits"/> (rows of
    /// <see cref="GenerationSettings.LogitsWidth"/> floats). Throws <see cref="InferenceException"/> when the engine fails.
    /// </summary>
    void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings);
}

/// <summary>
/// The decoder of models exported without a KV cache (like the samples): each step feeds every sequence's last
/// <see cref="GenerationSettings.ContextWindow"/> tokens, left-padded with the pad id, as one [batch, window] tensor
/// through the backend, and takes the logits of the last position. Works with any backend.
/// </summary>
public sealed class WindowDecoder : IDecoder, IDisposable
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
    public void Dispose() => _run.Dispose();

    /// <inheritdoc />
    public void Step(IReadOnlyList<DecoderSequence> batch, Span<float> logits, ref ExecutionTimings timings)
    {
        var count = batch.Count;
        var window = _config.ContextWindow;
        var width = _config.LogitsWidth;
        var wide = _config.InputType == DataType.Int64;
        var buffer = TensorBuffer.Rent(count * window * (wide ? 8 : 4));
        if (wide)
        {
            var ids = MemoryMarshal.Cast<byte, long>(buffer.Span);
            for (var b = 0; b < count; b++)
            {
                FillWindow(batch[b].Tokens, ids.Slice(b * window, window), _config.PadTokenId);
            }
        }
        else
        {
            var ids = MemoryMarshal.Cast<byte, int>(buffer.Span);
            for (var b = 0; b < count; b++)
            {
                FillWindow(batch[b].Tokens, ids.Slice(b * window, window), (int)_config.PadTokenId);
            }
        }
        using var input = new Tensor(_config.InputName, _config.InputType, [count, window], buffer);
        _run.Inputs.Clear();
        _run.Inputs.Add(input);
        try
        {
            _model.Execute(_run, ref timings);
        }
        finally
        {
            _run.Inputs.Clear();
        }

        using var output = _logits.TakeResult();
        var shape = output.Shape;
        var positions = _config.LogitsPerPosition && shape.Length == 3 ? (int)shape[1] : 1;
        if (shape[0] != count || shape[^1] != width || output.DataType != DataType.Fp32)
        {
            throw new InferenceException(InferenceErrorKind.Internal,
                $"the model returned logits of shape [{string.Join(",", shape)}] {output.DataType.ConfigName()}; expected FP32 [{count},...,{width}]");
        }
        var values = output.Elements<float>();
        for (var b = 0; b < count; b++)
        {
            values.Slice(((b * positions) + positions - 1) * width, width).CopyTo(logits.Slice(b * width, width));
        }
    }

    private static void FillWindow<T>(List<int> tokens, Span<T> row, T pad) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        var source = CollectionsMarshal.AsSpan(tokens);
        var take = Math.Min(source.Length, row.Length);
        var padding = row.Length - take;
        row[..padding].Fill(pad);
        var tail = source[^take..];
        for (var i = 0; i < take; i++)
        {
            row[padding + i] = T.CreateTruncating(tail[i]);
        }
    }
}
