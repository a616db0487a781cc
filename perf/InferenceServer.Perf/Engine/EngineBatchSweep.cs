using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Perf;

/// <summary>
/// The in-process engine at batch sizes 1..N, with the server's instance and thread settings: <c>instances</c>
/// ONNX Runtime sessions (each with <c>intra_op_num_threads</c> = <c>threads</c>, other options at their defaults, as
/// the server creates them), each driven by its own thread in a closed loop over the same prepared input of
/// <c>batch</c> rows. The figure is samples (rows) per second: no protocol, no copies, no queue.
/// </summary>
internal sealed class EngineBatchSweep : IDisposable
{
    private readonly InferenceSession[] _sessions;
    private readonly RunOptions _runOptions = new();
    private readonly IReadOnlyList<InputTensor> _rowInputs;
    private readonly string[] _outputNames;

    /// <param name="spinning">ONNX Runtime's <c>session.intra_op.allow_spinning</c> (its default, and what the server uses, is on).</param>
    public EngineBatchSweep(string modelPath, IReadOnlyList<InputTensor> rowInputs, int instances, int threads, bool spinning = true)
    {
        ModelPath = modelPath;
        Instances = instances;
        Threads = threads;
        _rowInputs = rowInputs;
        _sessions = new InferenceSession[instances];
        for (var i = 0; i < instances; i++)
        {
            using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, IntraOpNumThreads = threads };
            if (!spinning)
            {
                options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            }
            _sessions[i] = new InferenceSession(modelPath, options);
        }
        _outputNames = _sessions[0].OutputNames.ToArray();
    }

    public string ModelPath { get; }

    public int Instances { get; }

    public int Threads { get; }

    /// <summary>"1 x 2" = one session with two intra-op threads.</summary>
    public string Setting => $"{Instances} x {Threads}";

    /// <summary>One closed-loop measurement at <paramref name="batch"/> rows per call; <see cref="Measurement.SamplesPerSecond"/> counts rows.</summary>
    public Measurement Run(int batch, TimeSpan duration, long maxRequests)
    {
        var inputs = _rowInputs.Select(t => t.WithBatch(batch)).ToArray();
        var names = inputs.Select(t => t.Name).ToArray();
        var pins = inputs.Select(t => GCHandle.Alloc(t.Data, GCHandleType.Pinned)).ToArray();
        var values = inputs.Select((t, i) => OrtValue.CreateTensorValueWithData(
            OrtMemoryInfo.DefaultInstance, ElementType(t.Datatype), t.Shape, pins[i].AddrOfPinnedObject(), t.Data.Length)).ToArray();
        try
        {
            var next = -1;
            var m = LoadLoop.RunThreads(_sessions.Length, duration, maxRequests, () =>
            {
                var session = _sessions[Interlocked.Increment(ref next) % _sessions.Length];
                return () =>
                {
                    using var results = session.Run(_runOptions, names, values, _outputNames);
                };
            });
            return m with { RowsPerRequest = batch };
        }
        finally
        {
            foreach (var v in values)
            {
                v.Dispose();
            }
            foreach (var p in pins)
            {
                p.Free();
            }
        }
    }

    public void Dispose()
    {
        foreach (var s in _sessions)
        {
            s.Dispose();
        }
        _runOptions.Dispose();
    }

    private static TensorElementType ElementType(string datatype) => datatype switch
    {
        "FP32" => TensorElementType.Float,
        "INT32" => TensorElementType.Int32,
        "INT64" => TensorElementType.Int64,
        _ => throw new NotSupportedException($"the batch sweep supports FP32, INT32 and INT64 inputs, not {datatype}"),
    };
}
