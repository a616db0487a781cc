using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace InferenceServer.Perf;

/// <summary>
/// h2load (Debian package nghttp2-client) as an outside load generator for gRPC unary calls: raw HTTP/2 POSTs to
/// <c>/inference.GRPCInferenceService/ModelInfer</c> with a prebuilt length-prefixed protobuf body, headers
/// <c>content-type: application/grpc</c> and <c>te: trailers</c>, <c>-c</c> connections with <c>-m</c> streams each,
/// for a fixed duration (<c>-D</c>). It cannot see gRPC statuses (an error is a <c>grpc-status</c> trailer on an HTTP
/// 200), so its 2xx count is checked against the server's own success count by the caller. Latencies come from its
/// per-request log (<c>--log-file</c>: start, HTTP status, microseconds).
/// </summary>
internal static partial class H2Load
{
    public const string Path = "/inference.GRPCInferenceService/ModelInfer";

    public static bool Available() => File.Exists("/usr/bin/h2load") || (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(System.IO.Path.Combine(d, "h2load")));

    /// <summary>One h2load run's own figures.</summary>
    public sealed record Result(long Done, long Succeeded2xx, long Failed, long Errored, long NonSuccessStatus, double Seconds, double[] LatenciesMs, string Command);

    /// <summary>Runs h2load for <paramref name="seconds"/> against <paramref name="grpc"/> with <paramref name="concurrency"/> streams over <paramref name="connections"/> connections.</summary>
    public static async Task<Result> RunAsync(Uri grpc, string bodyFile, int concurrency, int connections, double seconds, string workDirectory)
    {
        connections = Math.Clamp(connections, 1, concurrency);
        var streams = (concurrency + connections - 1) / connections;
        var log = System.IO.Path.Combine(workDirectory, $"h2load-{Guid.NewGuid():N}.log");
        string[] args =
        [
            "-D", seconds.ToString("0.###", CultureInfo.InvariantCulture), "-c", $"{connections}", "-m", $"{streams}", "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", bodyFile, "--log-file", log,
            new Uri(grpc, Path).ToString(),
        ];
        var command = "h2load " + string.Join(' ', args.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        try
        {
            var output = await ServerBuild.RunAsync("h2load", args, workDirectory, TimeSpan.FromSeconds(seconds + 60)).ConfigureAwait(false);
            var requests = RequestsLine().Match(output);
            var finished = FinishedLine().Match(output);
            var statuses = StatusLine().Match(output);
            if (!requests.Success || !finished.Success || !statuses.Success)
            {
                throw new InvalidOperationException($"cannot read h2load's output:\n{output}");
            }
            long N(Match m, string g) => long.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
            var latencies = File.ReadLines(log)
                .Select(l => l.Split('\t'))
                .Where(f => f.Length >= 3 && f[1] == "200")
                .Select(f => double.Parse(f[2], CultureInfo.InvariantCulture) / 1000)
                .ToArray();
            Array.Sort(latencies);
            var seconds2 = double.Parse(finished.Groups["value"].Value, CultureInfo.InvariantCulture) * (finished.Groups["unit"].Value == "ms" ? 1e-3 : 1);
            return new Result(N(requests, "done"), N(statuses, "ok"), N(requests, "failed"), N(requests, "errored"),
                N(statuses, "s3") + N(statuses, "s4") + N(statuses, "s5"), seconds2, latencies, command);
        }
        finally
        {
            File.Delete(log);
        }
    }

    [GeneratedRegex(@"requests: (?<total>\d+) total, (?<started>\d+) started, (?<done>\d+) done, (?<succeeded>\d+) succeeded, (?<failed>\d+) failed, (?<errored>\d+) errored")]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"finished in (?<value>[\d.]+)(?<unit>s|ms)")]
    private static partial Regex FinishedLine();

    [GeneratedRegex(@"status codes: (?<ok>\d+) 2xx, (?<s3>\d+) 3xx, (?<s4>\d+) 4xx, (?<s5>\d+) 5xx")]
    private static partial Regex StatusLine();
}
