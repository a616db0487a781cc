using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace InferenceServer.Backends.TorchSharp;

/// <summary>
/// One TorchScript module. Each execution copies the inputs into libtorch tensors (moved to the device when it is
/// CUDA), runs <c>forward</c> in inference mode, and copies the outputs back into pooled buffers; every libtorch
/// tensor of the call is released by a dispose scope when it returns.
/// </summary>
internal sealed class TorchScriptModel : IBackendModel
{
    private readonly jit.ScriptModule _module;
    private readonly Device _device;

    public TorchScriptModel(jit.ScriptModule module, ModelSignature signature, Device device)
    {
        _module = module;
        _device = device;
        Signature = signature;
        ExecutionProvider = device.type == DeviceType.CUDA ? $"libtorch CUDA:{device.index}" : "libtorch CPU";
    }

    public ModelSignature Signature { get; }

    public string ExecutionProvider { get; }

    public void Execute(EngineRun run, ref ExecutionTimings timings)
    {
        var start = Stopwatch.GetTimestamp();
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var declared = Signature.Inputs;
        var arguments = new object[declared.Count];
        for (var i = 0; i < declared.Count; i++)
        {
            var input = FindInput(run.Inputs, declared[i].Name)
                ?? throw InferenceException.InvalidArgument($"input '{declared[i].Name}' is required: TorchScript's forward() takes every declared input");
            arguments[i] = ToTorch(input, _device);
        }
        var ran = Stopwatch.GetTimestamp();
        timings.InputTicks += ran - start;

        object result;
        try
        {
            result = _module.forward(arguments);
        }
        catch (ExternalException e)
        {
            // The inputs matched the declared types and shapes; what forward() still refuses (a size the module's
            // weights cannot take) is the client's to fix, except running out of device memory.
            var message = CleanMessage(e.Message);
            throw message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
                ? new InferenceException(InferenceErrorKind.Internal, "model execution failed: " + message)
                : InferenceException.InvalidArgument("the model rejected the inputs: " + message);
        }
        var copied = Stopwatch.GetTimestamp();
        timings.InferTicks += copied - ran;

        var results = Flatten(result);
        if (results.Count != Signature.Outputs.Count)
        {
            throw new InferenceException(InferenceErrorKind.Internal,
                $"forward() returned {results.Count} tensor(s) but the configuration declares {Signature.Outputs.Count} output(s)");
        }
        try
        {
            foreach (var output in run.Outputs)
            {
                var index = IndexOfOutput(output.Name);
                var config = Signature.Outputs[index];
                var tensor = results[index];
                output.Result = output.Into is { } into ? CopyInto(config, tensor, into) : FromTorch(config, tensor);
            }
        }
        catch
        {
            run.DiscardResults();
            throw;
        }
        timings.OutputTicks += Stopwatch.GetTimestamp() - copied;
    }

    public void Dispose() => _module.Dispose();

    private int IndexOfOutput(string name)
    {
        for (var i = 0; i < Signature.Outputs.Count; i++)
        {
            if (Signature.Outputs[i].Name == name)
            {
                return i;
            }
        }
        throw InferenceException.InvalidArgument($"unknown output '{name}'");
    }

    private static Tensors.Tensor? FindInput(List<Tensors.Tensor> inputs, string name)
    {
        foreach (var input in inputs)
        {
            if (input.Name == name)
            {
                return input;
            }
        }
        return null;
    }

    private static torch.Tensor ToTorch(Tensors.Tensor input, Device device)
    {
        var tensor = empty(input.Shape, ToTorch(input.DataType)!.Value);
        input.Data.Span.CopyTo(tensor.bytes);
        return device.type == DeviceType.CPU ? tensor : tensor.to(device);
    }

    private static List<torch.Tensor> Flatten(object result)
    {
        var list = new List<torch.Tensor>();
        Add(result);
        return list;

        void Add(object item)
        {
            switch (item)
            {
                case torch.Tensor t:
                    list.Add(t);
                    break;
                case System.Collections.IEnumerable items:
                    foreach (var i in items)
                    {
                        Add(i!);
                    }
                    break;
                default:
                    throw new InferenceException(InferenceErrorKind.Internal, $"forward() returned a {item?.GetType().Name ?? "null"}; only tensors and tuples or lists of tensors can be served");
            }
        }
    }

    private static Tensors.Tensor FromTorch(Configuration.TensorConfig config, torch.Tensor tensor)
    {
        var type = FromTorch(tensor.dtype);
        if (type != config.DataType)
        {
            throw new InferenceException(InferenceErrorKind.Internal,
                $"output '{config.Name}' came out as {tensor.dtype} but the configuration declares {config.DataType.ConfigName()}");
        }
        var host = OnHost(tensor);
        return new Tensors.Tensor(config.Name, type.Value, host.shape, TensorBuffer.CopyOf(host.bytes));
    }

    /// <summary>The tensor in contiguous host memory (itself when it already is).</summary>
    private static torch.Tensor OnHost(torch.Tensor tensor)
    {
        var host = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        return host.is_contiguous() ? host : host.contiguous();
    }

    /// <summary>Copies an output into memory the caller bound for it, which must have the output's shape and type.</summary>
    private static Tensors.Tensor CopyInto(Configuration.TensorConfig config, torch.Tensor tensor, Tensors.Tensor into)
    {
        var type = FromTorch(tensor.dtype);
        if (type != into.DataType || !tensor.shape.AsSpan().SequenceEqual(into.Shape))
        {
            throw new InferenceException(InferenceErrorKind.Internal,
                $"output '{config.Name}' is {tensor.dtype} {TensorShape.Format(tensor.shape)}, not the bound {into.DataType.ConfigName()} {TensorShape.Format(into.Shape)}");
        }
        OnHost(tensor).bytes.CopyTo(into.Data.Span);
        return into;
    }

    internal static ScalarType? ToTorch(DataType type) => type switch
    {
        DataType.Fp32 => ScalarType.Float32,
        DataType.Fp64 => ScalarType.Float64,
        DataType.Fp16 => ScalarType.Float16,
        DataType.Bf16 => ScalarType.BFloat16,
        DataType.Int8 => ScalarType.Int8,
        DataType.UInt8 => ScalarType.Byte,
        DataType.Int16 => ScalarType.Int16,
        DataType.Int32 => ScalarType.Int32,
        DataType.Int64 => ScalarType.Int64,
        DataType.Bool => ScalarType.Bool,
        _ => null,
    };

    private static DataType? FromTorch(ScalarType type) => type switch
    {
        ScalarType.Float32 => DataType.Fp32,
        ScalarType.Float64 => DataType.Fp64,
        ScalarType.Float16 => DataType.Fp16,
        ScalarType.BFloat16 => DataType.Bf16,
        ScalarType.Int8 => DataType.Int8,
        ScalarType.Byte => DataType.UInt8,
        ScalarType.Int16 => DataType.Int16,
        ScalarType.Int32 => DataType.Int32,
        ScalarType.Int64 => DataType.Int64,
        ScalarType.Bool => DataType.Bool,
        _ => null,
    };

    /// <summary>
    /// libtorch's messages carry a TorchScript traceback and C++ frames; clients get the error line itself
    /// ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x100 and 1000x100)").
    /// </summary>
    internal static string CleanMessage(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        for (var i = lines.Length - 1; i >= 0; i--)
        {
            if (lines[i].Contains("Error: ", StringComparison.Ordinal) && !lines[i].StartsWith("Traceback", StringComparison.Ordinal))
            {
                return lines[i];
            }
        }
        foreach (var line in lines)
        {
            if (line.StartsWith("Exception raised from", StringComparison.Ordinal) || line.StartsWith("frame #", StringComparison.Ordinal))
            {
                break;
            }
            return line;
        }
        return "unknown libtorch error";
    }
}
