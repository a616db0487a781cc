using System.Buffers;
using System.Diagnostics;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Backends.OnnxRuntime;

/// <summary>
/// One ONNX Runtime session, run through an I/O binding on every device: inputs are bound as <see cref="OrtValue"/>s
/// over the pinned pooled request buffers (no copy; on CUDA the runtime copies them to the device); outputs go into
/// memory the caller bound (<see cref="EngineOutput.Into"/>), or into host memory the runtime allocates — plain on the
/// CPU, pinned on CUDA so the device copies straight into it — which the output tensor then owns (no copy; strings
/// are copied into the protocol's form). The CPU and CUDA paths differ only in that output memory.
/// </summary>
internal sealed class OnnxRuntimeModel : IBackendModel
{
    private static readonly RunOptions SharedRunOptions = new();
    private readonly InferenceSession _session;
    private readonly OrtMemoryInfo _outputMemory;

    public OnnxRuntimeModel(InferenceSession session, ModelSignature signature, string executionProvider, int deviceId)
    {
        _session = session;
        Signature = signature;
        ExecutionProvider = executionProvider;
        _outputMemory = executionProvider == OnnxRuntimeBackend.CudaProvider
            ? new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA_PINNED, OrtAllocatorType.DeviceAllocator, deviceId, OrtMemType.CpuOutput)
            : OrtMemoryInfo.DefaultInstance;
    }

    public ModelSignature Signature { get; }

    public string ExecutionProvider { get; }

    public void Execute(EngineRun run, ref ExecutionTimings timings)
    {
        var start = Stopwatch.GetTimestamp();
        var inputs = run.Inputs;
        var outputs = run.Outputs;
        // Input values first, then the values over memory the caller bound for outputs.
        var values = new OrtValue[inputs.Count + outputs.Count];
        var pins = new MemoryHandle[values.Length];
        try
        {
            for (var i = 0; i < inputs.Count; i++)
            {
                values[i] = CreateValue(inputs[i], ref pins[i]);
            }
            var ran = Stopwatch.GetTimestamp();
            timings.InputTicks += ran - start;

            using var binding = _session.CreateIoBinding();
            for (var i = 0; i < inputs.Count; i++)
            {
                binding.BindInput(inputs[i].Name, values[i]);
            }
            for (var j = 0; j < outputs.Count; j++)
            {
                var output = outputs[j];
                if (output.Into is { } into)
                {
                    if (into.DataType == DataType.Bytes)
                    {
                        throw new InvalidOperationException($"output '{output.Name}': BYTES outputs cannot be bound to preallocated memory");
                    }
                    var at = inputs.Count + j;
                    values[at] = CreateValue(into, ref pins[at]);
                    binding.BindOutput(output.Name, values[at]);
                }
                else
                {
                    // Strings never live on a device.
                    binding.BindOutputToDevice(output.Name, IsString(output.Name) ? OrtMemoryInfo.DefaultInstance : _outputMemory);
                }
            }
            IDisposableReadOnlyCollection<OrtValue> results;
            try
            {
                results = _session.RunWithBoundResults(SharedRunOptions, binding);
            }
            catch (OnnxRuntimeException e)
            {
                // The inputs passed validation against the configuration, so what the engine still refuses
                // (a shape the graph cannot take) is the client's to fix; anything else is the engine's failure.
                var message = CleanMessage(e.Message);
                throw e.Message.Contains("[ErrorCode:InvalidArgument]", StringComparison.Ordinal)
                    ? InferenceException.InvalidArgument("the model rejected the inputs: " + message)
                    : new InferenceException(InferenceErrorKind.Internal, "model execution failed: " + message);
            }
            var copied = Stopwatch.GetTimestamp();
            timings.InferTicks += copied - ran;
            TakeResults(run, results);
            timings.OutputTicks += Stopwatch.GetTimestamp() - copied;
        }
        finally
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i]?.Dispose();
                pins[i].Dispose();
            }
        }
    }

    /// <summary>
    /// Hands each result to its output: a bound output's value is only a view of the caller's memory (disposed here);
    /// any other becomes a tensor. On a failure no output keeps a result and every value is disposed.
    /// </summary>
    private static void TakeResults(EngineRun run, IDisposableReadOnlyCollection<OrtValue> results)
    {
        var outputs = run.Outputs;
        var j = 0;
        try
        {
            foreach (var value in results)
            {
                var output = outputs[j++];
                if (output.Into is { } into)
                {
                    value.Dispose();
                    output.Result = into;
                }
                else
                {
                    output.Result = TakeOutput(output.Name, value);
                }
            }
        }
        catch
        {
            foreach (var rest in results.Skip(j))
            {
                rest.Dispose();
            }
            run.DiscardResults();
            throw;
        }
    }

    public void Dispose()
    {
        _session.Dispose();
        if (_outputMemory != OrtMemoryInfo.DefaultInstance)
        {
            _outputMemory.Dispose();
        }
    }

    private bool IsString(string output)
    {
        foreach (var o in Signature.Outputs)
        {
            if (o.Name == output)
            {
                return o.DataType == DataType.Bytes;
            }
        }
        return false;
    }

    private static OrtValue CreateValue(Tensor tensor, ref MemoryHandle pin)
    {
        if (tensor.DataType == DataType.Bytes)
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, tensor.Shape);
            ReadOnlySpan<byte> data = tensor.Data.Span;
            for (var index = 0; !data.IsEmpty; index++)
            {
                value.StringTensorSetElementAt(BytesElements.ReadNext(ref data), index);
            }
            return value;
        }
        pin = tensor.Data.Pin();
        unsafe
        {
            return OrtValue.CreateTensorValueWithData(
                OrtMemoryInfo.DefaultInstance, OnnxRuntimeBackend.ToOrt(tensor.DataType), tensor.Shape, (IntPtr)pin.Pointer, tensor.Data.Length);
        }
    }

    /// <summary>
    /// The tensor of one engine output: fixed-size elements stay in the engine's memory (the tensor owns the value
    /// and disposes it), strings are copied into the protocol's length-prefixed form and the value disposed.
    /// </summary>
    private static Tensor TakeOutput(string name, OrtValue value)
    {
        if (!value.IsTensor)
        {
            throw new InferenceException(InferenceErrorKind.Internal, $"output '{name}' is not a tensor");
        }
        var info = value.GetTensorTypeAndShape();
        var type = OnnxRuntimeBackend.FromOrt(info.ElementDataType)
            ?? throw new InferenceException(InferenceErrorKind.Internal, $"output '{name}' has unsupported element type {info.ElementDataType}");
        var shape = info.Shape;
        if (type != DataType.Bytes)
        {
            var owner = new OrtValueMemory(value);
            return new Tensor(name, type, shape, TensorBuffer.Own(owner, owner.Memory.Length));
        }
        using (value)
        {
            var elements = (int)info.ElementCount;
            using var writer = new TensorWriter(DataType.Bytes, elements);
            for (var i = 0; i < elements; i++)
            {
                writer.WriteBytes(value.GetStringElementAsSpan(i));
            }
            return new Tensor(name, type, shape, writer.Detach());
        }
    }

    /// <summary>Strips ONNX Runtime's "[ErrorCode:X]" prefix and source locations from an engine message.</summary>
    internal static string CleanMessage(string message)
    {
        var text = message;
        if (text.StartsWith("[ErrorCode:", StringComparison.Ordinal))
        {
            var end = text.IndexOf(']');
            text = end > 0 ? text[(end + 1)..].TrimStart() : text;
        }
        return text.Trim();
    }
}
