using System.CommandLine;
using System.Globalization;
using InferenceServer.Client.Cli.Commands;

namespace InferenceServer.Client.Cli;

/// <summary><c>infer</c>'s commands: <c>health</c>, <c>models</c>, <c>metadata</c>, <c>predict</c> and <c>generate</c>.</summary>
internal static class InferCommandLine
{
    public static RootCommand Build()
    {
        var common = new CommonOptions();
        var root = new RootCommand("infer: call a KServe v2 / Triton inference server (REST or gRPC): health, models, metadata, predict, generate");
        foreach (var option in common.All)
        {
            root.Options.Add(option);
        }
        root.Subcommands.Add(ServerCommands.Health(common));
        root.Subcommands.Add(ServerCommands.Models(common));
        root.Subcommands.Add(ServerCommands.Metadata(common));
        root.Subcommands.Add(PredictCommand.Build(common));
        root.Subcommands.Add(GenerateCommand.Build(common));
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var configuration = new InvocationConfiguration { Output = output ?? Console.Out, Error = error ?? Console.Error };
        var parsed = Build().Parse(args);
        if (parsed.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
        {
            foreach (var parseError in parsed.Errors)
            {
                await configuration.Error.WriteLineAsync($"infer: {parseError.Message}");
            }
            await configuration.Error.WriteLineAsync("(infer --help lists the commands and options)");
            return ExitCodes.BadInput;
        }
        return await parsed.InvokeAsync(configuration);
    }
}

/// <summary>The exit codes: 0 success, 1 the server or the request failed, 2 bad input.</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int BadInput = 2;
}

/// <summary>The options every command takes: where the server is, the protocol, deadline, retries, headers.</summary>
internal sealed class CommonOptions
{
    public Option<string> Url { get; } = new("--url")
    {
        Description = "the server's REST address",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("INFER_URL") ?? "http://localhost:8000",
        Recursive = true,
    };

    public Option<string?> Grpc { get; } = new("--grpc") { Description = "use gRPC at HOST:PORT (e.g. localhost:8001) instead of REST", Recursive = true };

    public Option<double?> Timeout { get; } = new("--timeout") { Description = "each call's deadline in seconds (default: none)", Recursive = true };

    public Option<int> Retries { get; } = new("--retries")
    {
        Description = "retries on 429/503 (RESOURCE_EXHAUSTED/UNAVAILABLE), honouring Retry-After",
        DefaultValueFactory = _ => 2,
        Recursive = true,
    };

    public Option<string[]> Headers { get; } = new("--header", "-H")
    {
        Description = "an extra request header K=V (e.g. x-tenant-id=acme); repeatable",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
        Recursive = true,
    };

    public IEnumerable<Option> All => [Url, Grpc, Timeout, Retries, Headers];

    /// <summary>The connection settings of a parsed command line; bad values throw <see cref="CliInputException"/>.</summary>
    public ConnectionSettings Settings(ParseResult result)
    {
        var url = result.GetValue(Url)!;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new CliInputException($"--url must be an http:// or https:// address, not '{url}'");
        }
        var grpc = result.GetValue(Grpc);
        if (grpc is not null)
        {
            var withoutScheme = grpc.Contains("://", StringComparison.Ordinal) ? grpc[(grpc.IndexOf("://", StringComparison.Ordinal) + 3)..] : grpc;
            var colon = withoutScheme.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(withoutScheme[(colon + 1)..].TrimEnd('/'), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new CliInputException($"--grpc must be HOST:PORT (e.g. localhost:8001), not '{grpc}'");
            }
        }
        var timeout = result.GetValue(Timeout);
        if (timeout is { } seconds && (!double.IsFinite(seconds) || seconds <= 0))
        {
            throw new CliInputException($"--timeout must be a positive number of seconds, not {seconds.ToString(CultureInfo.InvariantCulture)}");
        }
        var retries = result.GetValue(Retries);
        if (retries < 0)
        {
            throw new CliInputException($"--retries must be 0 or more, not {retries}");
        }
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var header in result.GetValue(Headers) ?? [])
        {
            var equals = header.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new CliInputException($"--header must be K=V (e.g. x-tenant-id=acme), not '{header}'");
            }
            headers[header[..equals].Trim()] = header[(equals + 1)..];
        }
        return new ConnectionSettings(url.TrimEnd('/'), grpc, timeout is { } t ? TimeSpan.FromSeconds(t) : null, retries, headers);
    }
}
