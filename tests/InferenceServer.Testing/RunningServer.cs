using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Grpc.Net.Client;
using InferenceServer.Hosting;
using InferenceServer.Observability;
using InferenceServer.Protocol;
using InferenceServer.Repository;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>The real server on loopback (Kestrel, free ports), with a REST client and a gRPC client.</summary>
public sealed class RunningServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Task _run;

    private RunningServer(WebApplication app, Task run, ServerEndpoints endpoints)
    {
        _app = app;
        _run = run;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{endpoints.HttpPort}"), Timeout = TimeSpan.FromMinutes(2) };
        Channel = GrpcChannel.ForAddress($"http://127.0.0.1:{endpoints.GrpcPort}", new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 256 * 1024 * 1024,
            MaxSendMessageSize = 256 * 1024 * 1024,
        });
        Grpc = new GRPCInferenceService.GRPCInferenceServiceClient(Channel);
        Endpoints = endpoints;
    }

    public HttpClient Http { get; }

    public GrpcChannel Channel { get; }

    public GRPCInferenceService.GRPCInferenceServiceClient Grpc { get; }

    public ServerEndpoints Endpoints { get; }

    public ModelRepository Repository => _app.Services.GetRequiredService<ModelRepository>();

    /// <summary>The server's services (the core's entry points, for tests that bypass the protocols).</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>A client of the metrics (admin) port.</summary>
    public HttpClient NewMetricsClient() => new() { BaseAddress = new Uri($"http://127.0.0.1:{Endpoints.MetricsPort}") };

    /// <summary>Starts a server over <paramref name="repository"/> and waits until its start-up models have loaded.</summary>
    public static Task<RunningServer> StartAsync(string repository, params string[] extraArgs) => StartAsync(repository, null, extraArgs);

    /// <summary>Starts a server with extra services (such as a test backend).</summary>
    public static Task<RunningServer> StartAsync(string repository, Action<IServiceCollection>? configureServices, params string[] extraArgs) =>
        StartAsync(repository, configureServices, null, extraArgs);

    /// <summary>
    /// Starts a server with configuration keys a deployment would set in the environment (such as <c>OTEL_*</c>): tests
    /// run servers in parallel in one process, so they never set process environment variables.
    /// </summary>
    public static Task<RunningServer> StartAsync(string repository, IReadOnlyDictionary<string, string?> configuration, Action<IServiceCollection>? configureServices = null) =>
        StartAsync(repository, configureServices, configuration, []);

    private static async Task<RunningServer> StartAsync(
        string repository, Action<IServiceCollection>? configureServices, IReadOnlyDictionary<string, string?>? configuration, string[] extraArgs)
    {
        var server = await StartWithoutWaitingAsync(repository, configureServices, configuration, extraArgs);
        await server.WaitForStartupAsync();
        return server;
    }

    /// <summary>Starts a server and returns as soon as it listens, while its start-up models may still be loading.</summary>
    public static Task<RunningServer> StartWithoutWaitingAsync(string repository, Action<IServiceCollection>? configureServices, params string[] extraArgs) =>
        StartWithoutWaitingAsync(repository, configureServices, null, extraArgs);

    private static async Task<RunningServer> StartWithoutWaitingAsync(
        string repository, Action<IServiceCollection>? configureServices, IReadOnlyDictionary<string, string?>? configuration, string[] extraArgs)
    {
        string[] args =
        [
            "--model-repository", repository, "--bind-address", "127.0.0.1",
            "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", .. extraArgs,
        ];
        var app = InferenceServerApp.Create(args, services =>
        {
            // The access log stays on, so that every test goes through it, but writes nowhere unless the test registers
            // a sink of its own (such as CapturedAccessLog) in configureServices.
            services.AddSingleton<IAccessLogSink>(new StreamAccessLogSink(Stream.Null));
            configureServices?.Invoke(services);
        }, configuration);
        // Run as Program does, so a drain that stops the host really closes the listeners.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        var run = app.RunAsync();
        await Task.WhenAny(started.Task, run);
        await (run.IsCompleted ? run : Task.CompletedTask);
        return new RunningServer(app, run, app.Services.GetRequiredService<ServerEndpoints>());
    }

    /// <summary>Waits (bounded) until the start-up models have loaded.</summary>
    public async Task WaitForStartupAsync()
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (!Repository.StartupComplete)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("models did not finish loading");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Completes when the host has stopped (after <see cref="DisposeAsync"/>, or after a drain).</summary>
    public Task Stopped => _run;

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Channel.Dispose();
        try
        {
            _app.Lifetime.StopApplication();
        }
        catch (ObjectDisposedException)
        {
            // A drain already stopped the host.
        }
        await _run;
        await _app.DisposeAsync();
    }
}
