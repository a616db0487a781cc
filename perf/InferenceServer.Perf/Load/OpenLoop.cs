using System.Diagnostics;

namespace InferenceServer.Perf;

/// <summary>
/// Open-loop load at a fixed rate: request i is due at <c>start + i / rate</c> whatever the previous ones are doing,
/// so a slow server meets a growing backlog instead of slowing the client down (no coordinated omission). Latency is
/// measured from the time a request was due, not from when it could be sent. Bounded by the duration, the request
/// cap and a cap on requests in flight (a request due while the cap is reached is not sent and counts as the error
/// <c>client:in-flight-cap</c>).
/// </summary>
internal static class OpenLoop
{
    public const int DefaultMaxInFlight = 4096;

    public static async Task<Measurement> RunAsync(double rate, TimeSpan duration, long maxRequests, int maxInFlight, Func<CancellationToken, Task> call)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rate);
        var total = (long)Math.Min(maxRequests, Math.Floor(rate * duration.TotalSeconds));
        var ticksPerRequest = Stopwatch.Frequency / rate;
        var recorder = new Recorder();
        var gate = new object();
        var inFlight = 0;
        var pending = new List<Task>((int)Math.Min(total, 1_000_000));
        using var timeout = new CancellationTokenSource(duration + LoadLoop.RequestTimeout);
        var start = Stopwatch.GetTimestamp();

        for (long i = 0; i < total; i++)
        {
            var due = start + (long)(i * ticksPerRequest);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                // Timer resolution is about a millisecond: sleep until just before, then send every request now due.
                await Task.Delay(TimeSpan.FromSeconds((wait - Stopwatch.Frequency / 2000) / (double)Stopwatch.Frequency)).ConfigureAwait(false);
            }
            if (Volatile.Read(ref inFlight) >= maxInFlight)
            {
                lock (gate)
                {
                    recorder.Error("client:in-flight-cap", $"more than {maxInFlight} requests in flight at {rate} req/s");
                }
                continue;
            }
            Interlocked.Increment(ref inFlight);
            pending.Add(SendAsync(due));
        }
        await Task.WhenAll(pending).WaitAsync(LoadLoop.RequestTimeout + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        return Recorder.Finish([recorder], Stopwatch.GetElapsedTime(start).TotalSeconds);

        async Task SendAsync(long due)
        {
            try
            {
                await Task.Yield();
                await call(timeout.Token).ConfigureAwait(false);
                lock (gate)
                {
                    recorder.Success(due);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                lock (gate)
                {
                    recorder.Error(e);
                }
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        }
    }
}
