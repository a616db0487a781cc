using System.Diagnostics;

namespace InferenceServer.Perf;

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

    /// <summary>The measurement window: start time, deadline, and the shared request count (also the raw HTTP/2 client's).</summary>
    internal sealed class Window(TimeSpan duration, long maxRequests)
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly long _deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        private long _issued;

        public bool TryBegin() => Stopwatch.GetTimestamp() < _deadline && Interlocked.Increment(ref _issued) <= maxRequests;

        public Measurement Finish(IReadOnlyList<Recorder> recorders) => Recorder.Finish(recorders, Stopwatch.GetElapsedTime(_start).TotalSeconds);
    }
}
