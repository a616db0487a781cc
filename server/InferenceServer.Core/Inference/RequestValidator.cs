using InferenceServer.Configuration;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Inference;

/// <summary>Checks a decoded request against the model's configuration; every error names the offending input or output.</summary>
public static class RequestValidator
{
    /// <summary>
    /// Throws <see cref="InferenceException"/> (InvalidArgument) when the request does not fit the model; returns the
    /// batch size (1 for models without a batch dimension). The <see cref="RequestLimits"/> were checked by the decoder,
    /// on each shape before its data was decoded.
    /// </summary>
    public static long Validate(InferenceRequest request, ModelConfig config)
    {
        long batch = -1;
        foreach (var input in request.Inputs)
        {
            var expected = config.FindInput(input.Name)
                ?? throw InferenceException.InvalidArgument(
                    $"unexpected input '{input.Name}' for model '{config.Name}' (inputs: {string.Join(", ", config.Inputs.Select(i => i.Name))})");
            if (input.DataType != expected.DataType)
            {
                throw InferenceException.InvalidArgument(
                    $"input '{input.Name}' has datatype {input.DataType.Name()} but model '{config.Name}' expects {expected.DataType.Name()}");
            }
            var dims = input.Shape.AsSpan();
            if (config.MaxBatchSize > 0)
            {
                if (dims.Length == 0)
                {
                    throw InferenceException.InvalidArgument($"input '{input.Name}' has no batch dimension; expected shape [-1,{string.Join(",", expected.Dims)}]");
                }
                if (dims[0] < 1 || dims[0] > config.MaxBatchSize)
                {
                    // Name the expected shape: a request that left out the batch dimension ([16] for [-1,16]) would
                    // otherwise read as a batch size it never meant.
                    throw InferenceException.InvalidArgument(
                        $"input '{input.Name}' has shape {TensorShape.Format(input.Shape)}; model '{config.Name}' expects " +
                        $"[batch{string.Concat(expected.Dims.Select(d => "," + d))}] with batch 1..{config.MaxBatchSize} (max_batch_size)" +
                        (dims.Length == expected.Dims.Length ? "; is the batch dimension missing?" : ""));
                }
                if (batch >= 0 && dims[0] != batch)
                {
                    throw InferenceException.InvalidArgument($"input '{input.Name}' has batch size {dims[0]} but other inputs have {batch}");
                }
                batch = dims[0];
                dims = dims[1..];
            }
            if (!Matches(dims, expected.Dims))
            {
                throw InferenceException.InvalidArgument(
                    $"input '{input.Name}' has shape {TensorShape.Format(input.Shape)} but model '{config.Name}' expects {(config.MaxBatchSize > 0 ? "[-1," + string.Join(",", expected.Dims) + "]" : TensorShape.Format(expected.Dims))}");
            }
            CheckData(input);
        }
        foreach (var expected in config.Inputs)
        {
            if (!expected.Optional && !request.Inputs.Exists(i => i.Name == expected.Name))
            {
                throw InferenceException.InvalidArgument($"missing input '{expected.Name}' for model '{config.Name}'");
            }
        }
        foreach (var output in request.RequestedOutputs)
        {
            if (config.FindOutput(output) is null)
            {
                throw InferenceException.InvalidArgument(
                    $"unknown output '{output}' requested from model '{config.Name}' (outputs: {string.Join(", ", config.Outputs.Select(o => o.Name))})");
            }
        }
        return batch < 0 ? 1 : batch;
    }

    /// <summary>Checks that a tensor's bytes hold exactly as many elements as its shape says.</summary>
    public static void CheckData(Tensor tensor)
    {
        if (!TensorShape.TryGetElementCount(tensor.Shape, out var count))
        {
            throw InferenceException.InvalidArgument($"input '{tensor.Name}' has invalid shape {TensorShape.Format(tensor.Shape)}");
        }
        var size = tensor.DataType.ElementSize();
        if (size > 0)
        {
            if ((long)tensor.Data.Length != count * size)
            {
                throw InferenceException.InvalidArgument(
                    $"input '{tensor.Name}' has {tensor.Data.Length} bytes of data but shape {TensorShape.Format(tensor.Shape)} of {tensor.DataType.Name()} needs {count * size}");
            }
            return;
        }
        if (!BytesElements.TryCount(tensor.Data.Span, out var actual))
        {
            throw InferenceException.InvalidArgument($"input '{tensor.Name}' BYTES data is malformed (each element needs a 4-byte little-endian length prefix)");
        }
        if (actual != count)
        {
            throw InferenceException.InvalidArgument(
                $"input '{tensor.Name}' has {actual} BYTES elements but shape {TensorShape.Format(tensor.Shape)} needs {count}");
        }
    }

    private static bool Matches(ReadOnlySpan<long> actual, long[] expected)
    {
        if (actual.Length != expected.Length)
        {
            return false;
        }
        for (var i = 0; i < actual.Length; i++)
        {
            if (expected[i] != -1 && actual[i] != expected[i])
            {
                return false;
            }
        }
        return true;
    }
}
