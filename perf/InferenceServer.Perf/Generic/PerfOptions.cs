using System.Globalization;
using System.Net;

namespace InferenceServer.Perf;

/// <summary>The harness's command-line options.</summary>
internal sealed record PerfOptions
{
    public static readonly string[] AllProtocols = ["grpc", "rest-json", "rest-binary"];
    private static readonly string[] LightModels = ["squeezenet", "resnet50"];

    public string ModelRepository { get; init; } = "models";
    public string Model { get; init; } = "simple";
    public string? Light { get; init; }
    public string SharedDir { get; init; } = DefaultSharedDir();
    public IReadOnlyList<string> Protocols { get; init; } = AllProtocols;
    public IReadOnlyList<int> Concurrency { get; init; } = [1, 2, 4, 8];
    public double DurationSeconds { get; init; } = 5;
    public double WarmupSeconds { get; init; } = 1;
    public int Runs { get; init; } = 3;
    public long MaxRequests { get; init; } = 1_000_000;
    public Uri? UrlHttp { get; init; }
    public Uri? UrlGrpc { get; init; }
    public string? Out { get; init; }
    public string? Json { get; init; }
    public IReadOnlyList<double> Rates { get; init; } = [];
    public int MaxInFlight { get; init; } = OpenLoop.DefaultMaxInFlight;
    public string ServerLogLevel { get; init; } = "Warning";
    public string GrpcClient { get; init; } = GrpcClientKind.Raw;

    /// <summary>Whether to start the server in-process (no URLs given) or load an external one.</summary>
    public bool InProcess => UrlGrpc is null;

    public static string Usage() => """
        Usage: dotnet run -c Release --project perf/InferenceServer.Perf -- [options]
               dotnet run -c Release --project perf/InferenceServer.Perf -- bench mlp|resnet50|payload|overhead [options]   (bench --help)
               dotnet run -c Release --project perf/InferenceServer.Perf -- echo [options]                                  (echo --help)

          --model-repository DIR   repository to serve (default: models)
          --model NAME             model to load-test (default: simple)
          --light NAME             squeezenet or resnet50: serve ../shared/models/onnx/light/light_NAME.onnx
                                   from a temporary repository (a symlink); replaces --model-repository/--model
          --shared-dir DIR         the shared data folder (default: $INFERENCE_SHARED_DIR or ../shared beside the repository)
          --protocol LIST          grpc, rest-json, rest-binary or all, comma-separated (default: all)
          --concurrency LIST       closed-loop clients, comma-separated, or "sweep" for 1,2,4,...,64 (default: 1,2,4,8)
          --rate LIST              also open-loop cells at these request rates (req/s), comma-separated
          --max-in-flight N        open loop: requests in flight before a due request is skipped as an error (default: 4096)
          --duration-seconds N     measured seconds per cell and run (default: 5)
          --warmup-seconds N       unmeasured seconds before each measurement (default: 1)
          --runs N                 repetitions; the table shows medians (default: 3)
          --max-requests N         cap on requests per measurement (default: 1000000)
          --url-http URL           external server's REST address (loopback only)
          --url-grpc URL           external server's gRPC address (loopback only); without it the server runs in-process
          --out FILE               also write the Markdown report to FILE
          --json FILE              write every run of every cell as JSON
          --server-log-level LVL   in-process server's log level, logs go to stderr (default: Warning)
          --grpc-client raw|dotnet closed-loop gRPC cells: raw = the harness's own HTTP/2 client, dotnet = Grpc.Net.Client
                                   (default: raw); open-loop cells (--rate) always use Grpc.Net.Client
        """;

    /// <summary>Parses <c>--flag value</c> or <c>--flag=value</c>; throws <see cref="ArgumentException"/> on anything wrong.</summary>
    public static PerfOptions Parse(IReadOnlyList<string> args)
    {
        var o = new PerfOptions();
        bool modelGiven = false, repositoryGiven = false;
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            (name, var value) = Flags.Next(args, ref i);
            o = name switch
            {
                "--model-repository" => o with { ModelRepository = value },
                "--model" => o with { Model = value },
                "--light" => o with { Light = OneOf(name, value, LightModels) },
                "--shared-dir" => o with { SharedDir = value },
                "--protocol" => o with { Protocols = ParseProtocols(value) },
                "--concurrency" => o with { Concurrency = value == "sweep" ? [1, 2, 4, 8, 16, 32, 64] : value.Split(',').Select(v => (int)Number(name, v, 1, 1024)).Distinct().ToArray() },
                "--rate" => o with { Rates = value.Split(',').Select(v => Number(name, v, 0.1, 1_000_000)).Distinct().ToArray() },
                "--max-in-flight" => o with { MaxInFlight = (int)Number(name, value, 1, 100_000) },
                "--json" => o with { Json = value },
                "--grpc-client" => o with { GrpcClient = GrpcClientKind.Parse(value) },
                "--duration-seconds" => o with { DurationSeconds = Number(name, value, 0.1, 3600) },
                "--warmup-seconds" => o with { WarmupSeconds = Number(name, value, 0, 600) },
                "--runs" => o with { Runs = (int)Number(name, value, 1, 100) },
                "--max-requests" => o with { MaxRequests = (long)Number(name, value, 1, 100_000_000) },
                "--url-http" => o with { UrlHttp = LoopbackUrl(name, value) },
                "--url-grpc" => o with { UrlGrpc = LoopbackUrl(name, value) },
                "--out" => o with { Out = value },
                "--server-log-level" => o with { ServerLogLevel = OneOf(name, value, ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"]) },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
            modelGiven |= name == "--model";
            repositoryGiven |= name == "--model-repository";
        }
        if (o.Light is not null && (modelGiven || repositoryGiven))
        {
            throw new ArgumentException("--light serves its own temporary repository; leave out --model and --model-repository");
        }
        if ((o.UrlHttp is null) != (o.UrlGrpc is null))
        {
            throw new ArgumentException("an external server needs both --url-http and --url-grpc");
        }
        if (o.Light is not null && !o.InProcess)
        {
            throw new ArgumentException("--light starts its own server; it cannot be combined with --url-http/--url-grpc");
        }
        return o.Light is null ? o : o with { Model = o.Light };
    }

    private static string[] ParseProtocols(string value)
    {
        var list = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (list.Contains("all"))
        {
            return AllProtocols;
        }
        return list.Length == 0 ? throw new ArgumentException("--protocol needs at least one protocol")
            : list.Select(p => OneOf("--protocol", p, AllProtocols)).Distinct().ToArray();
    }

    private static string OneOf(string name, string value, string[] allowed) =>
        allowed.FirstOrDefault(a => string.Equals(a, value, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"{name} must be one of {string.Join(", ", allowed)}, not '{value}'");

    private static double Number(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be a number from {min} to {max}, not '{value}'");

    private static Uri LoopbackUrl(string name, string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException($"{name} must be an http:// URL, not '{value}'");
        }
        var loopback = uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
        return loopback ? uri : throw new ArgumentException($"{name} must point at a loopback address (127.0.0.1, [::1], localhost), not '{uri.Host}'");
    }

    public static string DefaultSharedDir()
    {
        if (Environment.GetEnvironmentVariable("INFERENCE_SHARED_DIR") is { Length: > 0 } fromEnvironment)
        {
            return fromEnvironment;
        }
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "InferenceServer.sln")))
            {
                return Path.Combine(dir.FullName, "..", "shared");
            }
        }
        return Path.Combine("..", "shared");
    }
}
