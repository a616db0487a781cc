using System.Net;
using System.Net.Sockets;

namespace InferenceServer.Hosting;

/// <summary>
/// <c>InferenceServer --health-check</c>: asks a running server on this machine whether it is live (GET
/// <c>/v2/health/live</c> on the metrics port) and exits 0 if it answers 200, else 1. The container image's
/// <c>HEALTHCHECK</c> runs it, so the image needs no curl. It reads the same flags, <c>INFERENCE_*</c> variables and
/// configuration as the server, so it finds the server on whatever metrics port and address it was given.
/// </summary>
internal static class HealthProbe
{
    /// <summary>The flag that turns the program into the probe.</summary>
    public const string Flag = "--health-check";

    /// <summary>The path asked: live as long as the process answers HTTP (never fails on slow models or a drain).</summary>
    public const string LivePath = "/v2/health/live";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Probes the server configured by <paramref name="args"/> (the server's flags, <see cref="Flag"/> itself ignored)
    /// and the environment; returns the exit code: 0 live, 1 not live or unreachable. Throws
    /// <see cref="ArgumentException"/> on a bad flag, as the server does.
    /// </summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        var url = LiveUrl(args);
        using var client = new HttpClient { Timeout = Timeout };
        try
        {
            using var response = await client.GetAsync(url, cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                await output.WriteLineAsync($"live: {url}");
                return 0;
            }
            await output.WriteLineAsync($"not live: {url} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            return 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or SocketException)
        {
            await output.WriteLineAsync($"not live: {url} did not answer ({e.Message})");
            return 1;
        }
    }

    /// <summary>The live URL of the server that <paramref name="args"/> and the environment configure.</summary>
    public static Uri LiveUrl(IReadOnlyList<string> args)
    {
        var builder = new ConfigurationBuilder();
        InferenceServerApp.AddConfigurationSources(builder, args.Where(a => a != Flag).ToList());
        var configuration = builder.Build();
        ServerOptions server;
        try
        {
            server = configuration.GetSection("Server").Get<ServerOptions>() ?? new ServerOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException(e.Message, e);
        }
        // A wildcard bind answers on loopback; a specific address only on itself.
        var host = server.BindAddress is "" or "0.0.0.0" or "*" or "+" ? "127.0.0.1"
            : server.BindAddress is "::" ? "[::1]"
            : IPAddress.TryParse(server.BindAddress, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]"
            : server.BindAddress;
        return new Uri($"http://{host}:{server.MetricsPort}{LivePath}");
    }
}
