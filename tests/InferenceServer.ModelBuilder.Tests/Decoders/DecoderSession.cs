using InferenceServer.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>The outputs of one call: logits <c>[batch, sequence, vocab]</c> (as floats) and the present cache.</summary>
internal sealed record DecoderStep(float[] Logits, int Batch, int Sequence, int Vocab, KvCache Present)
{
    public float[] At(int b, int s) => Logits.AsSpan((b * Sequence + s) * Vocab, Vocab).ToArray();
}

/// <summary>
/// An in-process ONNX Runtime session over a written decoder, fed and read in the Optimum layout (<see cref="Run"/>) or
/// the legacy merged layout (<see cref="RunMerged"/>).
/// </summary>
internal sealed class DecoderSession : IDisposable
{
    private readonly InferenceSession _session;

    public DecoderSession(DecoderOptions options, byte[] model)
    {
        Shape = options.Shape;
        _session = new InferenceSession(model, NewSessionOptions());
    }

    public DecoderSession(DecoderOptions options, string modelPath)
        : this(options.Shape, modelPath)
    {
    }

    /// <summary>Opens the model at <paramref name="modelPath"/>, whose interface has the shapes <paramref name="shape"/>.</summary>
    public DecoderSession(OptimumDecoderShape shape, string modelPath)
    {
        Shape = shape;
        _session = new InferenceSession(modelPath, NewSessionOptions());
    }

    public OptimumDecoderShape Shape { get; }

    public InferenceSession Session => _session;

    /// <summary>Builds the embedded model of <paramref name="options"/> and opens it.</summary>
    public static DecoderSession Create(DecoderOptions options) => new(options, DecoderModelWriter.EmbeddedModelBytes(options));

    /// <summary>
    /// One call in the current layout. All rows have the same number of new tokens; <paramref name="mask"/> rows are
    /// <c>past.Length + ids</c> long.
    /// </summary>
    public DecoderStep Run(long[][] ids, long[][] mask, long[][] positions, KvCache past)
    {
        Assert.All(positions, r => Assert.Equal(ids[0].Length, r.Length));
        return Call(ids, mask, past, past.Length, (OptimumDecoderLayout.PositionIds, Int64(positions)));
    }

    /// <summary>
    /// One call of a legacy merged decoder (<see cref="LegacyOptimumDecoderLayout"/>): no positions (the graph counts
    /// them from the past's length) and <c>use_cache_branch = [<paramref name="useCacheBranch"/>]</c>. The mask covers
    /// the past and the new tokens on the cache branch, the new tokens only on the first-step branch (which ignores the past).
    /// </summary>
    public DecoderStep RunMerged(long[][] ids, long[][] mask, KvCache past, bool useCacheBranch) =>
        Call(ids, mask, past, useCacheBranch ? past.Length : 0, (LegacyOptimumDecoderLayout.UseCacheBranch, OrtValue.CreateTensorValueFromMemory(new[] { useCacheBranch }, [1])));

    private DecoderStep Call(long[][] ids, long[][] mask, KvCache past, int maskedPast, (string Name, OrtValue Value) layoutInput)
    {
        var names = new List<string> { layoutInput.Name };
        var values = new List<OrtValue> { layoutInput.Value };
        try
        {
            int batch = ids.Length;
            int sequence = ids[0].Length;
            Assert.All(ids, r => Assert.Equal(sequence, r.Length));
            Assert.All(mask, r => Assert.Equal(maskedPast + sequence, r.Length));
            Assert.Equal(batch, past.Batch);

            void Add(string name, OrtValue value)
            {
                names.Add(name);
                values.Add(value);
            }

            Add(OptimumDecoderLayout.InputIds, Int64(ids));
            Add(OptimumDecoderLayout.AttentionMask, Int64(mask));
            for (int i = 0; i < Shape.Layers; i++)
            {
                Add(OptimumDecoderLayout.PastKey(i), Floats(past.Keys[i], past.Shape));
                Add(OptimumDecoderLayout.PastValue(i), Floats(past.Values[i], past.Shape));
            }

            var outputNames = OptimumDecoderLayout.OutputNames(Shape.Layers).ToArray();
            using var results = _session.Run(new RunOptions(), names, values, outputNames);
            float[] logits = ReadFloats(results[0]);
            var shape = results[1].GetTensorTypeAndShape().Shape;
            var present = new KvCache(Shape.Layers, batch, Shape.KvHeads, checked((int)shape[2]), Shape.HeadDim);
            Assert.Equal(present.Shape, shape);
            for (int i = 0; i < Shape.Layers; i++)
            {
                ReadFloats(results[1 + 2 * i]).CopyTo(present.Keys[i], 0);
                ReadFloats(results[2 + 2 * i]).CopyTo(present.Values[i], 0);
            }

            Assert.Equal([batch, sequence, Shape.Vocab], results[0].GetTensorTypeAndShape().Shape);
            return new DecoderStep(logits, batch, sequence, Shape.Vocab, present);
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    /// <summary>One sequence from scratch: its tokens at positions 0…n−1, nothing cached, no padding.</summary>
    public DecoderStep RunFull(long[] tokens) =>
        Run([tokens], [Ones(tokens.Length)], [Enumerable.Range(0, tokens.Length).Select(p => (long)p).ToArray()], KvCache.Empty(Shape, 1));

    public void Dispose() => _session.Dispose();

    public static long[] Ones(int n) => Enumerable.Repeat(1L, n).ToArray();

    private static SessionOptions NewSessionOptions() => new()
    {
        LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        IntraOpNumThreads = 1,
    };

    private static OrtValue Int64(long[][] rows)
    {
        var flat = rows.SelectMany(r => r).ToArray();
        return OrtValue.CreateTensorValueFromMemory(flat, [rows.Length, rows[0].Length]);
    }

    private OrtValue Floats(float[] data, long[] shape)
    {
        if (Shape.Precision == DecoderPrecision.Float32)
        {
            var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, shape);
            data.CopyTo(value.GetTensorMutableDataAsSpan<float>());
            return value;
        }

        var half = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float16, shape);
        var span = half.GetTensorMutableDataAsSpan<Float16>();
        for (int i = 0; i < data.Length; i++)
        {
            span[i] = new Float16(BitConverter.HalfToUInt16Bits((Half)data[i]));
        }

        return half;
    }

    private float[] ReadFloats(OrtValue value)
    {
        var type = value.GetTensorTypeAndShape().ElementDataType;
        if (Shape.Precision == DecoderPrecision.Float32)
        {
            Assert.Equal(TensorElementType.Float, type);
            return value.GetTensorDataAsSpan<float>().ToArray();
        }

        Assert.Equal(TensorElementType.Float16, type);
        var span = value.GetTensorDataAsSpan<Float16>();
        var floats = new float[span.Length];
        for (int i = 0; i < span.Length; i++)
        {
            floats[i] = (float)BitConverter.UInt16BitsToHalf(span[i].value);
        }

        return floats;
    }
}
