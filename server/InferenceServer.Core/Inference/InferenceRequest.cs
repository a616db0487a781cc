using System.Diagnostics;
using InferenceServer.Tensors;

namespace InferenceServer.Inference;

/// <summary>
/// One inference request as every protocol adapter decodes it: the model, the input tensors over pooled buffers and
/// the outputs wanted. Disposing it returns the input buffers.
/// </summary>
public sealed class InferenceRequest : IDisposable
{
    /// <summary>Creates a request for <paramref name="modelName"/>; an empty <paramref name="modelVersion"/> means the latest ready version.</summary>
    public InferenceRequest(string modelName, string? modelVersion = null)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        ModelName = modelName;
        ModelVersion = modelVersion ?? "";
    }

    /// <summary>The model's name.</summary>
    public string ModelName { get; }

    /// <summary>The requested version, or empty for the latest ready one.</summary>
    public string ModelVersion { get; }

    /// <summary>The client's request id, echoed in the response.</summary>
    public string Id { get; set; } = "";

    /// <summary>The tenant (from the configured tenant header), for per-tenant rate limits; null or empty: the shared default bucket.</summary>
    public string? Tenant { get; set; }

    /// <summary>Request parameters (string, bool, long or double values), accepted and passed along.</summary>
    public Dictionary<string, object> Parameters { get; } = new(StringComparer.Ordinal);

    /// <summary>The priority level asked for (Triton's <c>priority</c> parameter): 1 is the highest; 0 the model's default level.</summary>
    public long Priority { get; set; }

    /// <summary>How long the request may wait in the queue, in microseconds (Triton's <c>timeout</c> parameter); null: the client set none.</summary>
    public long? TimeoutMicroseconds { get; set; }

    /// <summary>
    /// Takes Triton's scheduling parameters (<c>priority</c>, <c>timeout</c>) from <see cref="Parameters"/> into
    /// <see cref="Priority"/> and <see cref="TimeoutMicroseconds"/>; every adapter calls it once it has read the
    /// request's parameters. A value of the wrong type is the client's mistake.
    /// </summary>
    public void ReadSchedulingParameters()
    {
        if (Parameters.TryGetValue("priority", out var priority))
        {
            Priority = priority is long level && level >= 0
                ? level
                : throw InferenceException.InvalidArgument("parameter 'priority' must be a non-negative integer (0: the model's default level, 1: the highest)");
        }
        if (Parameters.TryGetValue("timeout", out var timeout))
        {
            TimeoutMicroseconds = TimeoutOf(timeout as long?);
        }
    }

    /// <summary>Triton's <c>timeout</c> parameter as read (null when it is not a whole number): microseconds, never negative; else the client's mistake.</summary>
    public static long TimeoutOf(long? microseconds) =>
        microseconds is >= 0 ? microseconds.Value : throw InferenceException.InvalidArgument("parameter 'timeout' must be a non-negative integer (microseconds)");

    /// <summary>
    /// The earlier of <paramref name="deadline"/> (0: none) and <paramref name="received"/> + <paramref name="timeoutMicroseconds"/>
    /// (0 or less: none; capped at a year, which is as good as none and stays clear of overflow).
    /// </summary>
    public static long DeadlineAfter(long deadline, long received, long timeoutMicroseconds)
    {
        if (timeoutMicroseconds <= 0)
        {
            return deadline;
        }
        // In floating point and capped: timeout * Frequency overflows a long past about 2.5 hours of microseconds.
        var byTimeout = received + (long)(Math.Min(timeoutMicroseconds, MaxTimeoutMicroseconds) / 1e6 * Stopwatch.Frequency);
        return deadline == 0 ? byTimeout : Math.Min(deadline, byTimeout);
    }

    /// <summary>A year: longer timeouts are as good as none.</summary>
    private const long MaxTimeoutMicroseconds = 365L * 24 * 3600 * 1_000_000;

    /// <summary>The input tensors; the request owns them.</summary>
    public List<Tensor> Inputs { get; } = [];

    /// <summary>The outputs to return, by name; empty means every output of the model.</summary>
    public List<string> RequestedOutputs { get; } = [];

    /// <summary>When the server received the request (<see cref="Stopwatch.GetTimestamp"/>), for queue statistics.</summary>
    public long ReceivedTimestamp { get; set; } = Stopwatch.GetTimestamp();

    /// <summary>The client's deadline (<see cref="Stopwatch.GetTimestamp"/>), 0 for none; a request still queued then is answered DEADLINE_EXCEEDED.</summary>
    public long Deadline { get; set; }

    /// <summary>
    /// The request's span while it runs (as Triton's request carries its trace), for the scheduler to record the
    /// execution it joined; null when nobody traces. Set by <see cref="InferenceDispatcher"/>.
    /// </summary>
    public Activity? Activity { get; internal set; }

    /// <summary>Adds an input, failing on a duplicate name.</summary>
    public void AddInput(Tensor tensor)
    {
        foreach (var existing in Inputs)
        {
            if (existing.Name == tensor.Name)
            {
                tensor.Dispose();
                throw InferenceException.InvalidArgument($"input '{tensor.Name}' is given more than once");
            }
        }
        Inputs.Add(tensor);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var input in Inputs)
        {
            input.Dispose();
        }
        Inputs.Clear();
    }
}
