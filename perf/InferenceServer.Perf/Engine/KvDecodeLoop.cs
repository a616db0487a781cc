using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using InferenceServer.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Perf;

/// <summary>Where a raw KV decode loop's outputs go: memory ONNX Runtime allocates per run, or preallocated buffers bound as outputs.</summary>
internal enum KvOutputs
{
    /// <summary>
    /// ONNX Runtime allocates <c>logits</c> and <c>present.*</c> (from its arena) on every run; the presents are fed back
    /// unchanged as the next run's <c>past_key_values.*</c> and released after it.
    /// </summary>
    Ort,

    /// <summary>
    /// As the server's engine does (<c>KvRegion</c>): two preallocated halves per layer's keys and values; a run reads
    /// the past from one half and writes the present into the other (outputs over caller memory), and the logits go
    /// into one preallocated buffer.
    /// </summary>
    Bound,
}

/// <summary>The shape of a Llama-style decoder graph as the loop drives it (from the options it was written with).</summary>
internal sealed record KvGraphShape(int Layers, int KvHeads, int HeadSize, int Vocab)
{
    public static KvGraphShape Of(DecoderOptions options) => new(options.Layers, options.KvHeads, options.HeadDim, options.Vocab);

    /// <summary>Bytes of FP32 cache one token takes over every layer (keys and values).</summary>
    public long BytesPerToken => (long)Layers * 2 * KvHeads * HeadSize * sizeof(float);
}

/// <summary>One round's figures: prefill time, every decode step's time, and when each batch of tokens came out.</summary>
internal sealed class KvRoundTimes
{
    /// <summary>The prefill run of every row together (it gives each row its first token), ms.</summary>
    public double PrefillMs { get; set; }

    /// <summary>Each decode step (one token per row), ms.</summary>
    public List<double> StepMs { get; } = new(256);

    /// <summary>Stopwatch timestamps of the first token (after the prefill) and of the last.</summary>
    public long FirstToken { get; set; }

    /// <summary>Stopwatch timestamp of the last token.</summary>
    public long LastToken { get; set; }
}

/// <summary>
/// The raw baseline of KV-cache decoding: ONNX Runtime called directly (no server, no scheduler, no <c>IBackendModel</c>)
/// on the same graph the server serves, with a session of its own as each of the server's engine instances has. A
/// round is static batching at its best: every row's prompt computed in one run (<c>input_ids</c> <c>[rows, prompt]</c>,
/// an empty past), each row's first token the argmax of its last position's logits, then one run per further token
/// (<c>[rows, 1]</c>) feeding the <c>present.*</c> outputs back as <c>past_key_values.*</c>. Every row has the same
/// length, so no padding: the mask is all ones and the positions are the row's length. Greedy: each token is the argmax.
/// </summary>
internal sealed class KvDecodeLoop : IKvRoundLoop
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly KvGraphShape _shape;
    private readonly KvOutputs _outputs;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    // Bound outputs: per half, per layer key and value (layer-major), and the logits; kept from round to round (grown when a round needs more).
    private float[][][]? _halves;
    private float[]? _logits;

    /// <summary>Loads the graph into a session of its own with <paramref name="threads"/> intra-op threads (the server's other session options are the defaults).</summary>
    public KvDecodeLoop(string modelFile, int threads, KvGraphShape shape, KvOutputs outputs)
    {
        // The server's OnnxRuntimeBackend: default options, errors only in the log, intra_op_num_threads from the parameters.
        using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, IntraOpNumThreads = threads };
        _session = new InferenceSession(modelFile, options);
        _shape = shape;
        _outputs = outputs;
        Threads = threads;
        _inputNames = [.. OptimumDecoderLayout.InputNames(shape.Layers)];
        _outputNames = [.. OptimumDecoderLayout.OutputNames(shape.Layers)];
    }

    public int Threads { get; }

    public KvOutputs Outputs => _outputs;

    public string OutputsName => Name(_outputs);

    /// <summary>
    /// One round over <paramref name="prompts"/> (one row each, all of <paramref name="promptTokens"/> tokens):
    /// the batched prefill, then decode steps until every row has <paramref name="newTokens"/> tokens. Returns each
    /// row's generated ids when <paramref name="generated"/> is given (its rows are filled).
    /// </summary>
    public KvRoundTimes Round(IReadOnlyList<int[]> prompts, int promptTokens, int newTokens, int[][]? generated = null)
    {
        using var batch = new Batch(this, prompts.Count, promptTokens, newTokens);
        return batch.Run(prompts, generated);
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }

    /// <summary>The bound outputs' memory, pinned, at least <paramref name="perLayer"/> floats per layer's keys or values and half, and <paramref name="logits"/> floats of logits.</summary>
    private (float[][][] Halves, float[] Logits) Buffers(int perLayer, int logits)
    {
        if (_halves is null || _halves[0][0].Length < perLayer)
        {
            _halves = new float[2][][];
            for (var half = 0; half < 2; half++)
            {
                _halves[half] = new float[_shape.Layers * 2][];
                for (var at = 0; at < _halves[half].Length; at++)
                {
                    _halves[half][at] = GC.AllocateUninitializedArray<float>(perLayer, pinned: true);
                }
            }
        }
        if (_logits is null || _logits.Length < logits)
        {
            _logits = GC.AllocateUninitializedArray<float>(logits, pinned: true);
        }
        return (_halves, _logits);
    }

    /// <summary>The buffers and values of one round.</summary>
    private sealed class Batch : IDisposable
    {
        private readonly KvDecodeLoop _loop;
        private readonly int _rows;
        private readonly int _prompt;
        private readonly int _newTokens;
        private readonly long[] _ids;
        private readonly long[] _positions;
        private readonly long[] _mask;
        private readonly int[] _last;
        private readonly float[][][]? _halves;
        private readonly float[]? _logits;
        private readonly OrtValue[] _inputValues;
        private readonly OrtValue?[] _outputValues;
        // Ort outputs: the previous run's results, whose presents are this run's past.
        private IDisposableReadOnlyCollection<OrtValue>? _previous;
        private int _current;

        // The memory of an empty past (a pinned slice of length 0 has a valid address, which ONNX Runtime wants).
        private static readonly float[] NoPast = GC.AllocateArray<float>(1, pinned: true);

        public Batch(KvDecodeLoop loop, int rows, int prompt, int newTokens)
        {
            _loop = loop;
            _rows = rows;
            _prompt = prompt;
            _newTokens = newTokens;
            _ids = new long[rows * prompt];
            _positions = new long[rows * prompt];
            _mask = new long[rows * (prompt + newTokens)];
            Array.Fill(_mask, 1L);
            _last = new int[rows];
            var shape = loop._shape;
            _inputValues = new OrtValue[loop._inputNames.Length];
            _outputValues = new OrtValue?[loop._outputNames.Length];
            if (loop._outputs == KvOutputs.Bound)
            {
                (_halves, _logits) = loop.Buffers(checked(rows * shape.KvHeads * (prompt + newTokens) * shape.HeadSize), checked(rows * prompt * shape.Vocab));
            }
        }

        public KvRoundTimes Run(IReadOnlyList<int[]> prompts, int[][]? generated)
        {
            var times = new KvRoundTimes();
            for (var r = 0; r < _rows; r++)
            {
                for (var t = 0; t < _prompt; t++)
                {
                    _ids[(r * _prompt) + t] = prompts[r][t];
                    _positions[(r * _prompt) + t] = t;
                }
            }
            var start = Stopwatch.GetTimestamp();
            Step(_prompt, 0, generated, 0);
            times.FirstToken = Stopwatch.GetTimestamp();
            times.PrefillMs = Stopwatch.GetElapsedTime(start, times.FirstToken).TotalMilliseconds;
            var previous = times.FirstToken;
            for (var n = 1; n < _newTokens; n++)
            {
                for (var r = 0; r < _rows; r++)
                {
                    _ids[r] = _last[r];
                    _positions[r] = _prompt + n - 1;
                }
                Step(1, _prompt + n - 1, generated, n);
                var now = Stopwatch.GetTimestamp();
                times.StepMs.Add(Stopwatch.GetElapsedTime(previous, now).TotalMilliseconds);
                previous = now;
            }
            times.LastToken = previous;
            return times;
        }

        /// <summary>One run: <paramref name="tokens"/> new tokens per row after <paramref name="past"/> cached ones; writes each row's argmax.</summary>
        private void Step(int tokens, int past, int[][]? generated, int index)
        {
            var loop = _loop;
            var shape = loop._shape;
            long[] tokenShape = [_rows, tokens];
            _inputValues[0] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _ids.AsMemory(0, _rows * tokens), tokenShape);
            _inputValues[1] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _mask.AsMemory(0, _rows * (past + tokens)), [_rows, past + tokens]);
            _inputValues[2] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _positions.AsMemory(0, _rows * tokens), tokenShape);
            long[] pastShape = [_rows, shape.KvHeads, past, shape.HeadSize];
            long[] presentShape = [_rows, shape.KvHeads, past + tokens, shape.HeadSize];
            var pastElements = _rows * shape.KvHeads * past * shape.HeadSize;
            var presentElements = _rows * shape.KvHeads * (past + tokens) * shape.HeadSize;
            // The past inputs of an Ort-outputs run after the first are the previous run's presents, which that run's results own.
            var borrowedPast = false;
            try
            {
                ReadOnlySpan<float> logits;
                IDisposableReadOnlyCollection<OrtValue>? results = null;
                if (_halves is { } halves)
                {
                    var next = 1 - _current;
                    for (var at = 0; at < shape.Layers * 2; at++)
                    {
                        _inputValues[3 + at] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, halves[_current][at].AsMemory(0, pastElements), pastShape);
                        _outputValues[1 + at] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, halves[next][at].AsMemory(0, presentElements), presentShape);
                    }
                    _outputValues[0] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _logits.AsMemory(0, _rows * tokens * shape.Vocab), [_rows, tokens, shape.Vocab]);
                    loop._session.Run(loop._runOptions, loop._inputNames, _inputValues, loop._outputNames, _outputValues!);
                    _current = next;
                    logits = _logits;
                }
                else
                {
                    borrowedPast = _previous is not null;
                    for (var at = 0; at < shape.Layers * 2; at++)
                    {
                        _inputValues[3 + at] = _previous is { } previous
                            ? previous[1 + at]
                            : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, NoPast.AsMemory(0, 0), pastShape);
                    }
                    results = loop._session.Run(loop._runOptions, loop._inputNames, _inputValues, loop._outputNames);
                    logits = results[0].GetTensorDataAsSpan<float>();
                }
                var vocab = shape.Vocab;
                for (var r = 0; r < _rows; r++)
                {
                    var row = logits.Slice(((r * tokens) + tokens - 1) * vocab, vocab);
                    _last[r] = TensorPrimitives.IndexOfMax(row);
                    if (generated is not null)
                    {
                        generated[r][index] = _last[r];
                    }
                }
                if (results is not null)
                {
                    // The presents just made are the next run's past; the previous ones are done with.
                    _previous?.Dispose();
                    _previous = results;
                }
            }
            finally
            {
                for (var i = 0; i < _inputValues.Length; i++)
                {
                    if (i < 3 || !borrowedPast)
                    {
                        _inputValues[i]?.Dispose();
                    }
                    _inputValues[i] = null!;
                }
                for (var i = 0; i < _outputValues.Length; i++)
                {
                    _outputValues[i]?.Dispose();
                    _outputValues[i] = null;
                }
            }
        }

        public void Dispose()
        {
            _previous?.Dispose();
            _previous = null;
        }
    }

    /// <summary>"ort" or "bound".</summary>
    public static string Name(KvOutputs outputs) => outputs.ToString().ToLower(CultureInfo.InvariantCulture);
}
