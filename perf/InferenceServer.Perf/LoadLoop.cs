using System.Diagnostics;

namespace InferenceServer.Perf;

/// <summary>One measurement: successful requests, errors, wall time, and the successful requests' latencies (sorted, ms).</summary>
internal sealed record Measurement(long Requests, long Errors, double Seconds, double[] LatenciesMs, string? FirstError)
{
    public double RequestsPerSecond => Seconds > 0 ? Requests / Seconds : 0;

    /// <summary>Nearest-rank percentile of the latencies (NaN when nothing succeeded).</summary>
    public double Percentile(double p) =>
        LatenciesMs.Length == 0 ? double.NaN : LatenciesMs[Math.Clamp((int)Math.Ceiling(p / 100 * LatenciesMs.Length) - 1, 0, LatenciesMs.Length - 1)];
}

/// <summary>
/// Closed-loop load: <c>concurrency</c> workers, each sending its next request as soon as the previous one answers,
/// until the duration ends or the request cap is reached (whichever comes first). Requests in flight at the end are
/// allowed to finish and counted; the wall time runs until the last one has.
/// </summary>
internal static class LoadLoop
{
    /// <summary>How long one request may take before it counts as an error (and the longest the loop waits past its duration).</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs asynchronous calls (the protocol clients) on the thread pool.</summary>
    public static async Task<Measurement> RunAsync(int concurrency, TimeSpan duration, long maxRequests, Func<CancellationToken, Task> call)
    {
        var window = new Window(duration, maxRequests);
        using var timeout = new CancellationTokenSource(duration + RequestTimeout);
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var recorder = new Recorder();
            while (window.TryBegin())
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await call(timeout.Token).ConfigureAwait(false);
                    recorder.Success(start);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    recorder.Error(e);
                }
            }
            return recorder;
        })).ToArray();
        var recorders = await Task.WhenAll(workers).WaitAsync(duration + RequestTimeout + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        return window.Finish(recorders);
    }

    /// <summary>Runs blocking calls (the engine) on dedicated threads, one per client.</summary>
    public static Measurement RunThreads(int concurrency, TimeSpan duration, long maxRequests, Func<Action> newWorker)
    {
        var window = new Window(duration, maxRequests);
        var recorders = new Recorder[concurrency];
        var threads = Enumerable.Range(0, concurrency).Select(i => new Thread(() =>
        {
            var recorder = recorders[i] = new Recorder();
            try
            {
                var call = newWorker();
                while (window.TryBegin())
                {
                    var start = Stopwatch.GetTimestamp();
                    call();
                    recorder.Success(start);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                recorder.Error(e);
            }
        }) { IsBackground = true, Name = $"engine-{i}" }).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }
        var deadline = Stopwatch.GetTimestamp() + (long)((duration + RequestTimeout).TotalSeconds * Stopwatch.Frequency);
        foreach (var thread in threads)
        {
            var left = TimeSpan.FromSeconds(Math.Max(0, deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
            if (!thread.Join(left))
            {
                throw new TimeoutException($"an engine worker did not finish within {duration + RequestTimeout}");
            }
        }
        return window.Finish(recorders);
    }

    /// <summary>The measurement window: start time, deadline, and the shared request count.</summary>
    private sealed class Window(TimeSpan duration, long maxRequests)
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly long _deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        private long _issued;

        public bool TryBegin() => Stopwatch.GetTimestamp() < _deadline && Interlocked.Increment(ref _issued) <= maxRequests;

        public Measurement Finish(IReadOnlyList<Recorder> recorders)
        {
            var seconds = Stopwatch.GetElapsedTime(_start).TotalSeconds;
            var latencies = recorders.SelectMany(r => r.LatenciesMs).ToArray();
            Array.Sort(latencies);
            return new Measurement(latencies.Length, recorders.Sum(r => r.Errors), seconds, latencies,
                recorders.Select(r => r.FirstError).FirstOrDefault(e => e is not null));
        }
    }

    /// <summary>One worker's latencies and errors (no sharing, so no locks on the hot path).</summary>
    private sealed class Recorder
    {
        public List<double> LatenciesMs { get; } = new(4096);

        public long Errors { get; private set; }

        public string? FirstError { get; private set; }

        public void Success(long start) => LatenciesMs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);

        public void Error(Exception e)
        {
            Errors++;
            FirstError ??= $"{e.GetType().Name}: {e.Message}";
        }
    }
}
