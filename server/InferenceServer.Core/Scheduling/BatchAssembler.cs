using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Scheduling;

/// <summary>
/// Gathers the inputs of a batch's requests into one pooled contiguous buffer per tensor (the one copy), and
/// scatters the outputs back as slices of the engine's output buffers (no copy).
/// </summary>
internal static class BatchAssembler
{
    /// <summary>Requests can share a batch when their inputs agree in name, datatype and every non-batch dimension, and they want the same outputs.</summary>
    public static bool CanShareBatch(InferenceRequest a, InferenceRequest b)
    {
        if (a.Inputs.Count != b.Inputs.Count || !a.RequestedOutputs.SequenceEqual(b.RequestedOutputs))
        {
            return false;
        }
        foreach (var x in a.Inputs)
        {
            var y = FindInput(b, x.Name);
            if (y is null || y.DataType != x.DataType || y.Shape.Length != x.Shape.Length || x.Shape.Length == 0 ||
                !x.Shape.AsSpan(1).SequenceEqual(y.Shape.AsSpan(1)))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// The batch's inputs, each its requests' tensors concatenated along the batch dimension into one pooled buffer
    /// (added to <paramref name="into"/>; the caller disposes them).
    /// </summary>
    public static void Gather(List<PendingRequest> batch, long rows, List<Tensor> into)
    {
        var first = batch[0].Request;
        var added = into.Count;
        try
        {
            foreach (var input in first.Inputs)
            {
                long bytes = 0;
                foreach (var pending in batch)
                {
                    bytes += FindInput(pending.Request, input.Name)!.Data.Length;
                }
                var buffer = TensorBuffer.Rent(checked((int)bytes));
                var offset = 0;
                foreach (var pending in batch)
                {
                    // BYTES data is length-prefixed, so concatenation is the batched form as well.
                    var part = FindInput(pending.Request, input.Name)!.Data.Span;
                    part.CopyTo(buffer.Span[offset..]);
                    offset += part.Length;
                }
                var shape = (long[])input.Shape.Clone();
                shape[0] = rows;
                into.Add(new Tensor(input.Name, input.DataType, shape, buffer));
            }
        }
        catch
        {
            for (var i = into.Count - 1; i >= added; i--)
            {
                into[i].Dispose();
                into.RemoveAt(i);
            }
            throw;
        }
    }

    /// <summary>
    /// Each request's rows of every output, as slices sharing the batch's output buffers, into <paramref name="responses"/>
    /// (one per request of the batch, in order).
    /// </summary>
    public static void Scatter(IReadOnlyList<Tensor> outputs, List<PendingRequest> batch, long rows, InferenceResponse[] responses)
    {
        foreach (var output in outputs)
        {
            if (output.Shape.Length == 0 || output.Shape[0] != rows)
            {
                throw new InferenceException(InferenceErrorKind.Internal,
                    $"output '{output.Name}' has shape {TensorShape.Format(output.Shape)}; a batched model must return the batch of {rows} as its first dimension");
            }
            TensorShape.TryGetElementCount(output.Shape, out var elements);
            var elementsPerRow = rows == 0 ? 0 : elements / rows;
            var offset = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                var count = batch[i].BatchSize * elementsPerRow;
                var length = ByteLength(output, offset, count);
                var shape = (long[])output.Shape.Clone();
                shape[0] = batch[i].BatchSize;
                responses[i].Outputs.Add(new Tensor(output.Name, output.DataType, shape, output.Data.Slice(offset, length)));
                offset += length;
            }
        }
    }

    private static Tensor? FindInput(InferenceRequest request, string name)
    {
        foreach (var input in request.Inputs)
        {
            if (input.Name == name)
            {
                return input;
            }
        }
        return null;
    }

    private static int ByteLength(Tensor tensor, int offset, long elements)
    {
        var size = tensor.DataType.ElementSize();
        if (size > 0)
        {
            return checked((int)(elements * size));
        }
        ReadOnlySpan<byte> data = tensor.Data.Span[offset..];
        var start = data.Length;
        for (var i = 0; i < elements; i++)
        {
            BytesElements.ReadNext(ref data);
        }
        return start - data.Length;
    }
}
