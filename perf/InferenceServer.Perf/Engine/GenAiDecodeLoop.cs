using System.Diagnostics;
using System.Numerics.Tensors;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Perf;

/// <summary>
/// The raw baseline of <c>bench genai</c>: ONNX Runtime called directly on onnxruntime-genai's graph
/// (<see cref="GenAiDecoderLayout"/>: GroupQueryAttention with rotary inside, no <c>position_ids</c>), its cache bound
/// as the server's engine binds a shared region (<c>KvRegion</c>): ONE preallocated buffer per layer's keys and values
/// of a fixed width, <c>[rows, kv_heads, width, head_size]</c>, bound whole as both the past input and the present
/// output, so that the kernel appends each run's new keys and values in place at each row's length (the count of ones
/// in its <c>attention_mask</c> row, right padding). A round: each row's prompt computed on its own in pieces of
/// <see cref="KvCachePlan.PrefillPiece"/> tokens (as the server's engine prefills a joining row; every row's prompt in
/// one run would need logits for every position of every row), each row's first token the argmax of its last
/// position's logits, then one run per further token over every row (<c>[rows, 1]</c>). Greedy.
/// </summary>
internal sealed class GenAiDecodeLoop : IKvRoundLoop
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly KvGraphShape _shape;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    // Per layer key and value (layer-major), rows x kv_heads x width x head_size each; grown when a round needs more.
    private float[][] _cache = [];
    private int _cacheRows;
    private int _cacheWidth;
    private float[] _logits = [];

    private readonly int _width;

    /// <summary>
    /// Loads the graph into a session of its own with <paramref name="threads"/> intra-op threads (the server's other
    /// session options); the cache's fixed width is <paramref name="width"/> tokens (the server's is max_model_len), or a
    /// round's prompt and new tokens when that is more.
    /// </summary>
    public GenAiDecodeLoop(string modelFile, int threads, KvGraphShape shape, int width)
    {
        _width = width;
        using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, IntraOpNumThreads = threads };
        _session = new InferenceSession(modelFile, options);
        _shape = shape;
        Threads = threads;
        _inputNames = [GenAiDecoderLayout.InputIds, GenAiDecoderLayout.AttentionMask, .. Enumerable.Range(0, shape.Layers).SelectMany(i => new[] { GenAiDecoderLayout.PastKey(i), GenAiDecoderLayout.PastValue(i) })];
        _outputNames = [.. GenAiDecoderLayout.OutputNames(shape.Layers)];
    }

    public int Threads { get; }

    public string OutputsName => "shared";

    public KvRoundTimes Round(IReadOnlyList<int[]> prompts, int promptTokens, int newTokens, int[][]? generated = null)
    {
        var rows = prompts.Count;
        var width = Math.Max(_width, promptTokens + newTokens);
        var piece = Math.Min(KvCachePlan.PrefillPiece, promptTokens);
        Reserve(rows, width, Math.Max(piece, rows));
        var ids = new long[Math.Max(piece, rows)];
        var mask = new long[rows * (width + 1)];
        var last = new int[rows];
        var times = new KvRoundTimes();
        var start = Stopwatch.GetTimestamp();
        var rowElements = _shape.KvHeads * width * _shape.HeadSize;
        // The last piece's tokens: its last position's logits give the row's first token.
        var lastPiece = promptTokens - ((promptTokens - 1) / piece * piece);
        for (var r = 0; r < rows; r++)
        {
            for (var done = 0; done < promptTokens; done += piece)
            {
                var count = Math.Min(piece, promptTokens - done);
                for (var t = 0; t < count; t++)
                {
                    ids[t] = prompts[r][done + t];
                }
                Array.Fill(mask, 1L, 0, done + count);
                Run(ids, 1, count, mask, done + count, r * rowElements, 1, width);
            }
            last[r] = TensorPrimitives.IndexOfMax(_logits.AsSpan((lastPiece - 1) * _shape.Vocab, _shape.Vocab));
        }
        Record(last, generated, 0);
        times.FirstToken = Stopwatch.GetTimestamp();
        times.PrefillMs = Stopwatch.GetElapsedTime(start, times.FirstToken).TotalMilliseconds;
        var previous = times.FirstToken;
        for (var n = 1; n < newTokens; n++)
        {
            // Every row has the same length here: its prompt and the n tokens so far; the mask's ones count them (no padding).
            var total = promptTokens + n;
            for (var r = 0; r < rows; r++)
            {
                ids[r] = last[r];
            }
            Array.Fill(mask, 1L, 0, rows * total);
            Run(ids, rows, 1, mask, total, 0, rows, width);
            for (var r = 0; r < rows; r++)
            {
                last[r] = TensorPrimitives.IndexOfMax(_logits.AsSpan(r * _shape.Vocab, _shape.Vocab));
            }
            Record(last, generated, n);
            var now = Stopwatch.GetTimestamp();
            times.StepMs.Add(Stopwatch.GetElapsedTime(previous, now).TotalMilliseconds);
            previous = now;
        }
        times.LastToken = previous;
        return times;
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }

    private static void Record(int[] last, int[][]? generated, int index)
    {
        if (generated is null)
        {
            return;
        }
        for (var r = 0; r < last.Length; r++)
        {
            generated[r][index] = last[r];
        }
    }

    /// <summary>The cache (pinned, one buffer per layer's keys and values) for <paramref name="rows"/> rows of <paramref name="width"/> tokens, and logits for <paramref name="positions"/> positions.</summary>
    private void Reserve(int rows, int width, int positions)
    {
        if (_cacheRows < rows || _cacheWidth != width)
        {
            var elements = checked(rows * _shape.KvHeads * width * _shape.HeadSize);
            _cache = Enumerable.Range(0, _shape.Layers * 2).Select(_ => GC.AllocateArray<float>(elements, pinned: true)).ToArray();
            (_cacheRows, _cacheWidth) = (rows, width);
        }
        if (_logits.Length < positions * _shape.Vocab)
        {
            _logits = GC.AllocateUninitializedArray<float>(positions * _shape.Vocab, pinned: true);
        }
    }

    /// <summary>
    /// One run of <paramref name="tokens"/> new tokens for each of <paramref name="rows"/> rows, the mask <paramref name="total"/>
    /// wide; the cache bound from <paramref name="offset"/> (a row's place, or 0) as <c>[rows, kv_heads, width, head_size]</c>,
    /// the same memory as past and present.
    /// </summary>
    private void Run(long[] ids, int rows, int tokens, long[] mask, int total, int offset, int cacheRows, int width)
    {
        long[] kvShape = [cacheRows, _shape.KvHeads, width, _shape.HeadSize];
        var elements = cacheRows * _shape.KvHeads * width * _shape.HeadSize;
        var inputs = new OrtValue[_inputNames.Length];
        var outputs = new OrtValue[_outputNames.Length];
        try
        {
            inputs[0] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, ids.AsMemory(0, rows * tokens), [rows, tokens]);
            inputs[1] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, mask.AsMemory(0, rows * total), [rows, total]);
            outputs[0] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _logits.AsMemory(0, rows * tokens * _shape.Vocab), [rows, tokens, _shape.Vocab]);
            for (var at = 0; at < _cache.Length; at++)
            {
                var memory = _cache[at].AsMemory(offset, elements);
                inputs[2 + at] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, kvShape);
                outputs[1 + at] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, kvShape);
            }
            _session.Run(_runOptions, _inputNames, inputs, _outputNames, outputs);
        }
        finally
        {
            foreach (var value in inputs.Concat(outputs))
            {
                value?.Dispose();
            }
        }
    }
}
