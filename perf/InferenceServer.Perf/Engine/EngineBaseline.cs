using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// The in-process baseline: the same model file and inputs run directly through one ONNX Runtime
/// <see cref="InferenceSession"/> (default session options, as the server uses for a model without parameters),
/// shared by N threads, one per client. Inputs are built once; each call is one <c>Run</c> whose outputs are
/// released unread: no protocol, no copies, no validation, no batching.
/// </summary>
internal sealed class EngineBaseline : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly OrtValue[] _inputValues;
    private readonly GCHandle[] _pins;
    private readonly string[] _outputNames;

    private EngineBaseline(string modelPath, IReadOnlyList<InputTensor> inputs)
    {
        ModelPath = modelPath;
        using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        _session = new InferenceSession(modelPath, options);
        _inputNames = inputs.Select(i => i.Name).ToArray();
        _outputNames = _session.OutputNames.ToArray();
        _pins = new GCHandle[inputs.Count];
        _inputValues = new OrtValue[inputs.Count];
        for (var i = 0; i < inputs.Count; i++)
        {
            _inputValues[i] = CreateValue(inputs[i], ref _pins[i]);
        }
    }

    public string ModelPath { get; }

    /// <summary>
    /// The baseline for the model the server serves: <c>REPOSITORY/NAME/VERSION/model.onnx</c> with the highest version
    /// the metadata lists (the one an unversioned request runs). Null, with the reason, when that file is not here.
    /// </summary>
    public static EngineBaseline? TryCreate(string? repository, ModelMetadataResponse metadata, IReadOnlyList<InputTensor> inputs, out string reason)
    {
        var version = metadata.Versions.Select(v => long.TryParse(v, CultureInfo.InvariantCulture, out var n) ? n : -1).DefaultIfEmpty(-1).Max();
        if (repository is null || version < 0)
        {
            reason = "no local model repository or version to read the model file from";
            return null;
        }
        var path = Path.Combine(repository, metadata.Name, version.ToString(CultureInfo.InvariantCulture), "model.onnx");
        if (!File.Exists(path))
        {
            reason = $"{path} not found";
            return null;
        }
        reason = "";
        return new EngineBaseline(path, inputs);
    }

    /// <summary>N threads, each calling the engine in a closed loop for the duration.</summary>
    public Measurement Run(int concurrency, TimeSpan duration, long maxRequests) =>
        LoadLoop.RunThreads(concurrency, duration, maxRequests, () => () =>
        {
            using var results = _session.Run(_runOptions, _inputNames, _inputValues, _outputNames);
        });

    public void Dispose()
    {
        foreach (var value in _inputValues)
        {
            value?.Dispose();
        }
        foreach (var pin in _pins)
        {
            if (pin.IsAllocated)
            {
                pin.Free();
            }
        }
        _runOptions.Dispose();
        _session.Dispose();
    }

    private static OrtValue CreateValue(InputTensor input, ref GCHandle pin)
    {
        if (input.Datatype == "BYTES")
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, input.Shape);
            ReadOnlySpan<byte> data = input.Data;
            for (var index = 0; !data.IsEmpty; index++)
            {
                var length = BinaryPrimitives.ReadInt32LittleEndian(data);
                value.StringTensorSetElementAt(data.Slice(4, length), index);
                data = data[(4 + length)..];
            }
            return value;
        }
        pin = GCHandle.Alloc(input.Data, GCHandleType.Pinned);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, ElementType(input.Datatype), input.Shape, pin.AddrOfPinnedObject(), input.Data.Length);
    }

    private static TensorElementType ElementType(string datatype) => datatype switch
    {
        "BOOL" => TensorElementType.Bool,
        "INT8" => TensorElementType.Int8,
        "UINT8" => TensorElementType.UInt8,
        "INT16" => TensorElementType.Int16,
        "UINT16" => TensorElementType.UInt16,
        "INT32" => TensorElementType.Int32,
        "UINT32" => TensorElementType.UInt32,
        "INT64" => TensorElementType.Int64,
        "UINT64" => TensorElementType.UInt64,
        "FP16" => TensorElementType.Float16,
        "BF16" => TensorElementType.BFloat16,
        "FP32" => TensorElementType.Float,
        "FP64" => TensorElementType.Double,
        _ => throw new NotSupportedException($"datatype {datatype} is not supported"),
    };
}
