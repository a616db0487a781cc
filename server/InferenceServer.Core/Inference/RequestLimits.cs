using System.Diagnostics;
using InferenceServer.Tensors;

namespace InferenceServer.Inference;

/// <summary>
/// Request limits beyond the transport's body size (section "Limits" of the configuration): checked on a tensor's
/// declared shape before any buffer is sized from it, so a shape like [2^40] costs nothing but its error.
/// </summary>
public sealed class RequestLimits
{
    /// <summary>Largest element count of one input tensor; more is 400 / INVALID_ARGUMENT.</summary>
    public long MaxTensorElements { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest total of the inputs' data bytes (as their shapes declare them) in one request; more is 400 / INVALID_ARGUMENT.</summary>
    public long MaxRequestTensorBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Deepest nesting of the REST infer body's JSON (arrays and objects); deeper is 400.</summary>
    public int MaxJsonDepth { get; set; } = 32;

    /// <summary>
    /// The deadline, in seconds, of an inference whose client gave none (no gRPC deadline, no <c>timeout</c> parameter)
    /// on a model without a queue timeout of its own; still queued then, it is answered 504 / DEADLINE_EXCEEDED. 0: none.
    /// </summary>
    public double DefaultTimeoutSeconds { get; set; } = 60;

    /// <summary>
    /// The deadline, in seconds, of a text generation whose client gave none (no <c>timeout</c> parameter, no gRPC
    /// deadline): waiting then, it leaves the queue; running, its stream ends with a deadline error and its KV memory is
    /// freed. 0: none.
    /// </summary>
    public double GenerationTimeoutSeconds { get; set; } = 600;

    /// <summary>Throws <see cref="ArgumentException"/> on a value no server could run with.</summary>
    public void Validate()
    {
        if (MaxTensorElements < 1 || MaxRequestTensorBytes < 1 || MaxJsonDepth < 1 || MaxJsonDepth > 1000 ||
            !(DefaultTimeoutSeconds >= 0 && DefaultTimeoutSeconds <= 86_400) || !(GenerationTimeoutSeconds >= 0 && GenerationTimeoutSeconds <= 86_400))
        {
            throw new ArgumentException(
                $"Limits: MaxTensorElements, MaxRequestTensorBytes must be positive, MaxJsonDepth 1..1000, DefaultTimeoutSeconds and GenerationTimeoutSeconds 0..86400 " +
                $"(got {MaxTensorElements}, {MaxRequestTensorBytes}, {MaxJsonDepth}, {DefaultTimeoutSeconds}, {GenerationTimeoutSeconds})");
        }
    }

    /// <summary>
    /// Checks one input's declared shape against the limits and adds its data bytes to <paramref name="requestBytes"/>;
    /// throws <see cref="InferenceException"/> (InvalidArgument) naming the input. BYTES elements count 4 bytes (their length prefix) each.
    /// </summary>
    public void CheckInput(string name, DataType type, ReadOnlySpan<long> shape, ref long requestBytes)
    {
        if (!TensorShape.TryGetElementCount(shape, out var count))
        {
            throw InferenceException.InvalidArgument($"input '{name}' has invalid shape {TensorShape.Format(shape)} (negative, or more elements than a 64-bit count holds)");
        }
        if (count > MaxTensorElements)
        {
            throw InferenceException.InvalidArgument(
                $"input '{name}' has shape {TensorShape.Format(shape)} of {count} elements, over the limit of {MaxTensorElements} (Limits:MaxTensorElements)");
        }
        var size = type.ElementSize() is > 0 and var fixedSize ? fixedSize : 4;
        // Compared by division: the product may overflow when MaxTensorElements is configured very large.
        if (count > (MaxRequestTensorBytes - requestBytes) / size)
        {
            throw InferenceException.InvalidArgument(
                $"input '{name}' has shape {TensorShape.Format(shape)} of {type.Name()}: the request's tensor data would exceed the limit of {MaxRequestTensorBytes} bytes (Limits:MaxRequestTensorBytes)");
        }
        requestBytes += count * size;
    }

    /// <summary>Gives a generation the default deadline (<see cref="GenerationTimeoutSeconds"/> after <paramref name="arrived"/>) when its client set none.</summary>
    public void ApplyGenerationTimeout(Generation.GenerationRequest request, long arrived)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (GenerationTimeoutSeconds > 0 && request.Deadline == 0)
        {
            request.Deadline = arrived + (long)(GenerationTimeoutSeconds * Stopwatch.Frequency);
        }
    }

    /// <summary>Gives <paramref name="request"/> the default deadline when neither the client nor the model set one.</summary>
    public void ApplyDefaultTimeout(InferenceRequest request, long modelTimeoutMicroseconds)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (DefaultTimeoutSeconds > 0 && request.Deadline == 0 && modelTimeoutMicroseconds == 0 && request.TimeoutMicroseconds is null)
        {
            request.Deadline = request.ReceivedTimestamp + (long)(DefaultTimeoutSeconds * Stopwatch.Frequency);
        }
    }
}
