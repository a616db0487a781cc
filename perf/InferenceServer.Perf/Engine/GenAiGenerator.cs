using System.Diagnostics;
using Microsoft.ML.OnnxRuntimeGenAI;

namespace InferenceServer.Perf;

/// <summary>
/// onnxruntime-genai's own loop over the same directory (<c>genai_config.json</c>, <c>model.onnx</c>): a
/// <see cref="Generator"/> at batch <c>rows</c>, greedy, every row's prompt appended at once (the library computes them in
/// one run) and <see cref="Generator.GenerateNextToken"/> until each row has its tokens. Its session options are the
/// ones <c>genai_config.json</c> gives (none: ONNX Runtime's defaults, a thread per core). Reported beside the raw loop,
/// no target.
/// </summary>
internal sealed class GenAiGenerator(string directory) : IDisposable
{
    private readonly Model _model = new(directory);

    /// <summary>One round: the figures as the raw loop's (prefill = the prompts' run and the first token; steps = one token per row each).</summary>
    public KvRawResult Run(IReadOnlyList<int[]> prompts, int promptTokens, int newTokens)
    {
        var rows = prompts.Count;
        var flat = new int[rows * promptTokens];
        for (var r = 0; r < rows; r++)
        {
            prompts[r].AsSpan(0, promptTokens).CopyTo(flat.AsSpan(r * promptTokens));
        }
        using var parameters = new GeneratorParams(_model);
        parameters.SetSearchOption("max_length", promptTokens + newTokens);
        parameters.SetSearchOption("min_length", promptTokens + newTokens);
        parameters.SetSearchOption("batch_size", rows);
        parameters.SetSearchOption("do_sample", false);
        var times = new KvRoundTimes();
        var start = Stopwatch.GetTimestamp();
        using var generator = new Generator(_model, parameters);
        generator.AppendTokens(flat);
        generator.GenerateNextToken();
        times.FirstToken = Stopwatch.GetTimestamp();
        times.PrefillMs = Stopwatch.GetElapsedTime(start, times.FirstToken).TotalMilliseconds;
        var previous = times.FirstToken;
        var produced = 1;
        while (!generator.IsDone() && produced < newTokens)
        {
            generator.GenerateNextToken();
            produced++;
            var now = Stopwatch.GetTimestamp();
            times.StepMs.Add(Stopwatch.GetElapsedTime(previous, now).TotalMilliseconds);
            previous = now;
        }
        times.LastToken = previous;
        var wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var steps = times.StepMs.Order().ToArray();
        var tokens = (long)rows * produced;
        var decodeSeconds = (times.LastToken - times.FirstToken) / (double)Stopwatch.Frequency;
        return new KvRawResult(new Measurement(steps.Length, 0, wall, steps, produced == newTokens ? null : $"generated {produced} of {newTokens} tokens per row") { Samples = tokens },
            [times.PrefillMs], 1, rows)
        {
            DecodeTokensPerSecond = decodeSeconds > 0 ? rows * (produced - 1) / decodeSeconds : double.NaN,
        };
    }

    public void Dispose() => _model.Dispose();
}
