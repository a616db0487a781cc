using System.Diagnostics;
using System.Net.Http;

namespace InferenceServer.Perf;

/// <summary>
/// One measurement: successful requests, errors (total and by status), wall time, and the successful requests'
/// latencies (sorted, ms). <see cref="SamplesPerSecond"/> counts rows: requests times the batch each carried, or the
/// rows counted directly (<see cref="Samples"/>: generated tokens).
/// </summary>
internal sealed record Measurement(long Requests, long Errors, double Seconds, double[] LatenciesMs, string? FirstError)
{
    /// <summary>Errors by status: <c>grpc:ResourceExhausted</c>, <c>http:429</c>, <c>timeout</c>, <c>client:in-flight-cap</c>, or an exception type.</summary>
    public IReadOnlyDictionary<string, long> ErrorsByStatus { get; init; } = new Dictionary<string, long>();

    /// <summary>Rows carried per request (the engine's batch size; 1 for a client request).</summary>
    public int RowsPerRequest { get; init; } = 1;

    /// <summary>Rows counted directly over the window when they do not follow from requests x rows (generated tokens); null otherwise.</summary>
    public long? Samples { get; init; }

    /// <summary>Streaming generation: each request's time per output token, (last token - first token) / (tokens - 1), sorted, ms.</summary>
    public double[] TimePerOutputTokenMs { get; init; } = [];

    public double RequestsPerSecond => Seconds > 0 ? Requests / Seconds : 0;

    public double SamplesPerSecond => Samples is { } samples ? (Seconds > 0 ? samples / Seconds : 0) : RequestsPerSecond * RowsPerRequest;

    public double MaxMs => LatenciesMs.Length == 0 ? double.NaN : LatenciesMs[^1];

    /// <summary>Nearest-rank percentile of the latencies (NaN when nothing succeeded).</summary>
    public double Percentile(double p) => Percentile(LatenciesMs, p);

    /// <summary>Nearest-rank percentile of sorted values (NaN when empty).</summary>
    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>"none" or e.g. "grpc:Unavailable=3, timeout=1".</summary>
    public string ErrorSummary => ErrorsByStatus.Count == 0 ? "none" : string.Join(", ", ErrorsByStatus.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}={e.Value}"));
}

/// <summary>One worker's latencies and errors (single-threaded use, or under the owner's lock).</summary>
internal sealed class Recorder(int capacity = 4096)
{
    /// <summary>Sized up front where the caller knows about how many requests to expect, so that the list does not grow during the window.</summary>
    public List<double> LatenciesMs { get; } = new(capacity);

    public Dictionary<string, long> ErrorsByStatus { get; } = new(StringComparer.Ordinal);

    public long Errors { get; private set; }

    public string? FirstError { get; private set; }

    public void Success(long start) => LatenciesMs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);

    public void Error(Exception e) => Error(StatusOf(e), $"{e.GetType().Name}: {e.Message}");

    public void Error(string status, string message)
    {
        Errors++;
        ErrorsByStatus[status] = ErrorsByStatus.GetValueOrDefault(status) + 1;
        FirstError ??= message;
    }

    /// <summary>The status an error is counted under: the gRPC status code, the HTTP status, or what failed on the client.</summary>
    public static string StatusOf(Exception e) => e switch
    {
        global::Grpc.Core.RpcException rpc => $"grpc:{rpc.StatusCode}",
        HttpRequestException { StatusCode: { } status } => $"http:{(int)status}",
        TaskCanceledException or OperationCanceledException or TimeoutException => "timeout",
        HttpRequestException => "http:connection",
        CompletionStreamException stream => stream.Status,
        _ => e.GetType().Name,
    };

    /// <summary>Merges recorders into one measurement over <paramref name="seconds"/> of wall time.</summary>
    public static Measurement Finish(IReadOnlyList<Recorder> recorders, double seconds)
    {
        var latencies = recorders.SelectMany(r => r.LatenciesMs).ToArray();
        Array.Sort(latencies);
        var byStatus = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (status, count) in recorders.SelectMany(r => r.ErrorsByStatus))
        {
            byStatus[status] = byStatus.GetValueOrDefault(status) + count;
        }
        return new Measurement(latencies.Length, recorders.Sum(r => r.Errors), seconds, latencies,
            recorders.Select(r => r.FirstError).FirstOrDefault(e => e is not null)) { ErrorsByStatus = byStatus };
    }
}
