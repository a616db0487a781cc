using InferenceServer.Configuration;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Backends.OnnxRuntime;

/// <summary>Loads ONNX models into ONNX Runtime sessions, on the CPU or a CUDA device.</summary>
public sealed class OnnxRuntimeBackend : IModelBackend
{
    internal const string CudaProvider = "CUDAExecutionProvider";
    private const string CpuProvider = "CPUExecutionProvider";

    /// <inheritdoc />
    public string Name => "onnxruntime";

    /// <inheritdoc />
    public string Platform => "onnxruntime_onnx";

    /// <inheritdoc />
    public string DefaultModelFilename => "model.onnx";

    /// <summary>The execution providers this build of ONNX Runtime has.</summary>
    public static IReadOnlyList<string> AvailableProviders { get; } = OrtEnv.Instance().GetAvailableProviders();

    /// <inheritdoc />
    public IBackendModel Load(BackendLoadRequest request)
    {
        if (!File.Exists(request.ModelPath))
        {
            throw new ModelLoadException($"model file '{Path.GetFileName(request.ModelPath)}' not found in version {request.Version}");
        }
        using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        ApplyParameters(options, request.Parameters);
        var provider = SelectProvider(options, request);
        InferenceSession session;
        try
        {
            session = new InferenceSession(request.ModelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            // The engine's message names the absolute path; clients see the path inside the repository instead.
            var message = OnnxRuntimeModel.CleanMessage(e.Message)
                .Replace(request.ModelPath, $"{request.ModelName}/{request.Version}/{Path.GetFileName(request.ModelPath)}", StringComparison.Ordinal);
            throw new ModelLoadException("ONNX Runtime could not load the model: " + message, e);
        }
        try
        {
            return new OnnxRuntimeModel(session, ReadSignature(session), provider, DeviceName.IsCuda(request.Device, out var deviceId) ? deviceId : 0);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static string SelectProvider(SessionOptions options, BackendLoadRequest request)
    {
        if (DeviceName.IsCpu(request.Device))
        {
            return CpuProvider;
        }
        if (DeviceName.IsCuda(request.Device, out var id))
        {
            if (!AvailableProviders.Contains(CudaProvider))
            {
                if (request.AllowCpuFallback)
                {
                    return CpuProvider;
                }
                throw new ModelLoadException(
                    $"device '{request.Device}' requested but this ONNX Runtime build has no {CudaProvider} (available: {string.Join(", ", AvailableProviders)}); set allow_cpu_fallback: true to run on the CPU");
            }
            try
            {
                options.AppendExecutionProvider_CUDA(id);
                return CudaProvider;
            }
            catch (OnnxRuntimeException e) when (request.AllowCpuFallback)
            {
                _ = e;
                return CpuProvider;
            }
            catch (OnnxRuntimeException e)
            {
                throw new ModelLoadException(
                    $"device '{request.Device}' could not be initialised: {OnnxRuntimeModel.CleanMessage(e.Message)}{CudaProviderLibrary.WhyItDoesNotLoad()}", e);
            }
        }
        throw new ModelLoadException($"device '{request.Device}' is not 'cpu' or 'cuda:N'");
    }

    private static void ApplyParameters(SessionOptions options, IReadOnlyDictionary<string, string> parameters)
    {
        foreach (var (key, value) in parameters)
        {
            switch (key)
            {
                case "intra_op_num_threads":
                    options.IntraOpNumThreads = ParseInt(key, value);
                    break;
                case "inter_op_num_threads":
                    options.InterOpNumThreads = ParseInt(key, value);
                    break;
                case "allow_spinning":
                    // Idle intra-op threads spin-wait by default: faster small executions, but they take cores the
                    // transport could use between executions. Measured both ways in perf/RESULTS.md.
                    options.AddSessionConfigEntry("session.intra_op.allow_spinning", value switch
                    {
                        "0" or "false" => "0",
                        "1" or "true" => "1",
                        _ => throw new ModelLoadException($"parameter allow_spinning must be true or false, not '{value}'"),
                    });
                    break;
                case "graph_optimization_level":
                    options.GraphOptimizationLevel = value switch
                    {
                        "disable" => GraphOptimizationLevel.ORT_DISABLE_ALL,
                        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
                        _ => throw new ModelLoadException($"parameter graph_optimization_level must be disable, basic, extended or all, not '{value}'"),
                    };
                    break;
            }
        }
    }

    private static int ParseInt(string key, string value) =>
        int.TryParse(value, out var n) && n >= 0 ? n : throw new ModelLoadException($"parameter {key} must be a non-negative integer, not '{value}'");

    private static ModelSignature ReadSignature(InferenceSession session)
    {
        return new ModelSignature(
            session.InputNames.Select(n => ToTensorConfig(n, session.InputMetadata[n], "input")).ToArray(),
            session.OutputNames.Select(n => ToTensorConfig(n, session.OutputMetadata[n], "output")).ToArray());
    }

    private static TensorConfig ToTensorConfig(string name, NodeMetadata metadata, string kind)
    {
        if (!metadata.IsTensor)
        {
            throw new ModelLoadException($"{kind} '{name}' is a {metadata.OnnxValueType}; only tensors can be served");
        }
        var type = FromOrt(metadata.ElementDataType)
            ?? throw new ModelLoadException($"{kind} '{name}' has element type {metadata.ElementDataType}, which the protocol cannot carry");
        return new TensorConfig(name, type, metadata.Dimensions.Select(d => d < 0 ? -1L : d).ToArray());
    }

    internal static DataType? FromOrt(TensorElementType type) => type switch
    {
        TensorElementType.Float => DataType.Fp32,
        TensorElementType.UInt8 => DataType.UInt8,
        TensorElementType.Int8 => DataType.Int8,
        TensorElementType.UInt16 => DataType.UInt16,
        TensorElementType.Int16 => DataType.Int16,
        TensorElementType.Int32 => DataType.Int32,
        TensorElementType.Int64 => DataType.Int64,
        TensorElementType.String => DataType.Bytes,
        TensorElementType.Bool => DataType.Bool,
        TensorElementType.Float16 => DataType.Fp16,
        TensorElementType.Double => DataType.Fp64,
        TensorElementType.UInt32 => DataType.UInt32,
        TensorElementType.UInt64 => DataType.UInt64,
        TensorElementType.BFloat16 => DataType.Bf16,
        _ => null,
    };

    internal static TensorElementType ToOrt(DataType type) => type switch
    {
        DataType.Fp32 => TensorElementType.Float,
        DataType.UInt8 => TensorElementType.UInt8,
        DataType.Int8 => TensorElementType.Int8,
        DataType.UInt16 => TensorElementType.UInt16,
        DataType.Int16 => TensorElementType.Int16,
        DataType.Int32 => TensorElementType.Int32,
        DataType.Int64 => TensorElementType.Int64,
        DataType.Bytes => TensorElementType.String,
        DataType.Bool => TensorElementType.Bool,
        DataType.Fp16 => TensorElementType.Float16,
        DataType.Fp64 => TensorElementType.Double,
        DataType.UInt32 => TensorElementType.UInt32,
        DataType.UInt64 => TensorElementType.UInt64,
        DataType.Bf16 => TensorElementType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };
}
