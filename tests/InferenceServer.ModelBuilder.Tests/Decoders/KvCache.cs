using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The key/value cache of every layer as plain floats, <c>[batch, kv_heads, length, head_dim]</c> row-major per layer,
/// with the batching operations an engine performs: take one row, stack rows left-padded to a common length.
/// </summary>
internal sealed class KvCache
{
    public KvCache(int layers, int batch, int kvHeads, int length, int headDim)
    {
        Layers = layers;
        Batch = batch;
        KvHeads = kvHeads;
        Length = length;
        HeadDim = headDim;
        Keys = Enumerable.Range(0, layers).Select(_ => new float[batch * kvHeads * length * headDim]).ToArray();
        Values = Enumerable.Range(0, layers).Select(_ => new float[batch * kvHeads * length * headDim]).ToArray();
    }

    public int Layers { get; }
    public int Batch { get; }
    public int KvHeads { get; }
    public int Length { get; }
    public int HeadDim { get; }
    public float[][] Keys { get; }
    public float[][] Values { get; }

    public long[] Shape => [Batch, KvHeads, Length, HeadDim];

    public static KvCache Empty(DecoderOptions options, int batch) => Empty(options.Shape, batch);

    public static KvCache Empty(OptimumDecoderShape shape, int batch) => new(shape.Layers, batch, shape.KvHeads, 0, shape.HeadDim);

    /// <summary>Row <paramref name="b"/> alone, its last <paramref name="keep"/> columns (all by default).</summary>
    public KvCache Row(int b, int? keep = null)
    {
        int n = keep ?? Length;
        var row = new KvCache(Layers, 1, KvHeads, n, HeadDim);
        for (int layer = 0; layer < Layers; layer++)
        {
            for (int h = 0; h < KvHeads; h++)
            {
                for (int t = 0; t < n; t++)
                {
                    int from = Index(b, h, Length - n + t);
                    int to = row.Index(0, h, t);
                    Array.Copy(Keys[layer], from, row.Keys[layer], to, HeadDim);
                    Array.Copy(Values[layer], from, row.Values[layer], to, HeadDim);
                }
            }
        }

        return row;
    }

    /// <summary>
    /// Stacks single-row caches into one batch, each left-padded to <paramref name="length"/> columns; the padding
    /// columns get <paramref name="fill"/>'s values (an engine would write zeros; anything must do, as they are masked).
    /// </summary>
    public static KvCache Stack(IReadOnlyList<KvCache> rows, int length, Func<float>? fill = null)
    {
        var first = rows[0];
        var stacked = new KvCache(first.Layers, rows.Count, first.KvHeads, length, first.HeadDim);
        for (int b = 0; b < rows.Count; b++)
        {
            var row = rows[b];
            Assert.Equal(1, row.Batch);
            Assert.True(row.Length <= length, $"row {b} has {row.Length} columns, more than {length}");
            int pad = length - row.Length;
            for (int layer = 0; layer < first.Layers; layer++)
            {
                for (int h = 0; h < first.KvHeads; h++)
                {
                    for (int t = 0; t < pad; t++)
                    {
                        int at = stacked.Index(b, h, t);
                        for (int d = 0; d < first.HeadDim; d++)
                        {
                            stacked.Keys[layer][at + d] = fill?.Invoke() ?? 0f;
                            stacked.Values[layer][at + d] = fill?.Invoke() ?? 0f;
                        }
                    }

                    for (int t = 0; t < row.Length; t++)
                    {
                        Array.Copy(row.Keys[layer], row.Index(0, h, t), stacked.Keys[layer], stacked.Index(b, h, pad + t), first.HeadDim);
                        Array.Copy(row.Values[layer], row.Index(0, h, t), stacked.Values[layer], stacked.Index(b, h, pad + t), first.HeadDim);
                    }
                }
            }
        }

        return stacked;
    }

    private int Index(int b, int h, int t) => ((b * KvHeads + h) * Length + t) * HeadDim;
}
