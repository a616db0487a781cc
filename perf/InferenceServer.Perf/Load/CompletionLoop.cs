using System.Diagnostics;

namespace InferenceServer.Perf;

/// <summary>
/// Closed-loop streaming completions: <c>concurrency</c> streams, each sending its next completion as soon as the
/// previous one has ended, through a warm-up and then a measured window with no gap between them (the streams are
/// already at their steady state when the window opens). What arrives inside the window counts:
/// <list type="bullet">
/// <item>generated tokens, each when its text arrives (a character per token, the usage chunk's count correcting
/// the request's total at its end), so requests that straddle the window's edges count only their part inside;</item>
/// <item>time to first token (request sent → first non-empty text) and time per output token ((last − first) /
/// (tokens − 1)) of the requests sent inside the window.</item>
/// </list>
/// Each stream's first completion is shorter (<c>i × max_tokens / concurrency</c> tokens for stream i): every
/// request takes the same number of decode steps, so streams started together would otherwise finish together, and
/// restart together, for ever. Requests still running when the window closes finish (uncounted); errors count over
/// warm-up and window. <c>opened</c> and <c>closed</c> run as the window opens and closes (profile snapshots).
/// </summary>
internal static class CompletionLoop
{
    /// <summary>Text prompts, a character per token (a character-level model): stream i sends prompt i modulo their count.</summary>
    public static Task<Measurement> RunAsync(
        CompletionClient client, IReadOnlyList<string> prompts, int maxTokens, int concurrency, TimeSpan warmup, TimeSpan duration, long maxRequests,
        Func<Task>? opened = null, Func<Task>? closed = null) =>
        RunAsync(client, (stream, tokens) => client.Body(prompts[stream % prompts.Count], tokens), TokenCounting.Characters,
            maxTokens, concurrency, warmup, duration, maxRequests, opened, closed);

    /// <summary>
    /// Any prompts: <paramref name="body"/> gives stream i's request body for a number of tokens; <paramref name="counting"/>
    /// says how arriving text counts as tokens. With <paramref name="freshBodies"/> it is asked again before every request
    /// (a new prompt each time, so that a prefix cache never serves one), else once per stream and kept.
    /// </summary>
    public static async Task<Measurement> RunAsync(
        CompletionClient client, Func<int, int, byte[]> body, TokenCounting counting, int maxTokens, int concurrency, TimeSpan warmup, TimeSpan duration, long maxRequests,
        Func<Task>? opened = null, Func<Task>? closed = null, bool freshBodies = false)
    {
        var start = Stopwatch.GetTimestamp();
        var from = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var to = from + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        using var timeout = new CancellationTokenSource(warmup + duration + LoadLoop.RequestTimeout);
        long issued = 0;
        var workers = Enumerable.Range(0, concurrency).Select(i => Task.Run(async () =>
        {
            var recorder = new StreamRecorder(from, to, counting);
            var onText = recorder.Text;
            var steady = body(i, maxTokens);
            var shortened = i * maxTokens / concurrency;
            var next = shortened > 0 ? body(i, shortened) : steady;
            while (Stopwatch.GetTimestamp() < to && Interlocked.Increment(ref issued) <= maxRequests)
            {
                try
                {
                    recorder.Completed(await client.StreamAsync(next, onText, null, timeout.Token).ConfigureAwait(false));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    recorder.Errors.Error(e);
                }
                next = freshBodies ? body(i, maxTokens) : steady;
            }
            return recorder;
        })).ToArray();
        await At(from, opened).ConfigureAwait(false);
        await At(to, closed).ConfigureAwait(false);
        var recorders = await Task.WhenAll(workers).WaitAsync(warmup + duration + LoadLoop.RequestTimeout + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        var measured = Recorder.Finish(recorders.Select(r => r.Errors).ToArray(), (to - from) / (double)Stopwatch.Frequency);
        var tpot = recorders.SelectMany(r => r.TimePerOutputTokenMs).ToArray();
        Array.Sort(tpot);
        var mismatched = recorders.Sum(r => r.UsageMismatches);
        return measured with
        {
            Samples = recorders.Sum(r => r.WindowTokens),
            TimePerOutputTokenMs = tpot,
            FirstError = measured.FirstError ?? (mismatched > 0 ? $"{mismatched} request(s) whose usage.completion_tokens differed from their text's characters (e.g. {recorders.First(r => r.UsageMismatches > 0).Mismatch})" : null),
        };
    }

    private static async Task At(long timestamp, Func<Task>? action)
    {
        if (action is null)
        {
            return;
        }
        var wait = (timestamp - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency;
        if (wait > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(wait)).ConfigureAwait(false);
        }
        await action().ConfigureAwait(false);
    }

    /// <summary>One stream's figures: tokens in the window, and its window requests' time to first token (as latencies) and per output token.</summary>
    private sealed class StreamRecorder(long from, long to, TokenCounting counting)
    {
        /// <summary>Time to first token in <see cref="Recorder.LatenciesMs"/>, and the errors.</summary>
        public Recorder Errors { get; } = new();

        public List<double> TimePerOutputTokenMs { get; } = new(256);

        public long WindowTokens { get; private set; }

        public int UsageMismatches { get; private set; }

        public string? Mismatch { get; private set; }

        public void Text(long timestamp, int characters) => Count(timestamp, counting == TokenCounting.Characters ? characters : 1);

        private void Count(long timestamp, int tokens)
        {
            if (timestamp >= from && timestamp < to)
            {
                WindowTokens += tokens;
            }
        }

        public void Completed(CompletionOutcome outcome)
        {
            var counted = counting == TokenCounting.Characters ? outcome.TextChars : outcome.TextEvents;
            if (outcome.UsageTokens is { } usage && usage != counted)
            {
                // The usage is the server's count: the difference (tokens that made no text) counts when the request
                // ended. With a character per token a difference is a fault; with events, a token whose text is not
                // complete yet (part of a UTF-8 sequence) or a special token makes no event of its own.
                if (counting == TokenCounting.Characters)
                {
                    UsageMismatches++;
                    Mismatch ??= $"usage {usage}, text {outcome.TextChars} characters";
                }
                Count(Stopwatch.GetTimestamp(), usage - counted);
            }
            if (outcome.Sent < from || outcome.Sent >= to || outcome.FirstText == 0)
            {
                return;
            }
            Errors.LatenciesMs.Add((outcome.FirstText - outcome.Sent) * 1000.0 / Stopwatch.Frequency);
            if (outcome.Tokens > 1)
            {
                TimePerOutputTokenMs.Add((outcome.LastText - outcome.FirstText) * 1000.0 / Stopwatch.Frequency / (outcome.Tokens - 1));
            }
        }
    }
}

/// <summary>How a streamed completion's text counts as tokens while it arrives (the usage chunk corrects each request's total at its end).</summary>
internal enum TokenCounting
{
    /// <summary>A character per token: a character-level model.</summary>
    Characters,

    /// <summary>An event per token: the server sends one event per sampled token whose text is complete.</summary>
    Events,
}
