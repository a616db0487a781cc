using System.Diagnostics;
using InferenceServer.Hosting;
using InferenceServer.Observability;
using InferenceServer.Protocol;
using InferenceServer.Repository;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Perf;

/// <summary>The server under load: the real server started in-process on loopback (free ports), or an external one on loopback.</summary>
internal sealed class ServerTarget : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(2);
    private readonly WebApplication? _app;
    private readonly string? _temporaryRepository;

    private ServerTarget(WebApplication? app, string? temporaryRepository, string? repository, Uri http, Uri grpc, Uri? metrics = null, int grpcConnections = 1, string? description = null)
    {
        _app = app;
        Metrics = metrics;
        _temporaryRepository = temporaryRepository;
        Repository = repository;
        Description = description ?? $"{(app is null ? "external" : "in-process")} server, REST {http}, gRPC {grpc}";
        Connection = new Connection(http, grpc, grpcConnections);
    }

    public string Description { get; }

    /// <summary>The server's process when it is a child of this one (out of process); null in process or external.</summary>
    public int? ProcessId { get; private init; }

    /// <summary>The model repository on this machine, where the engine baseline finds the model file.</summary>
    public string? Repository { get; }

    public Connection Connection { get; }

    /// <summary>The metrics (admin) port's address, for the in-process server; null for an external one.</summary>
    public Uri? Metrics { get; }

    public GRPCInferenceService.GRPCInferenceServiceClient Grpc => Connection.Grpc;

    /// <summary>A server in another process on this machine (a benchmark's child server): its addresses, and <paramref name="grpcConnections"/> gRPC connections to it.</summary>
    public static ServerTarget External(string description, string repository, Uri http, Uri grpc, Uri? metrics, int grpcConnections, int? processId = null) =>
        new(null, null, repository, http, grpc, metrics, grpcConnections, description) { ProcessId = processId };

    /// <summary>The generic mode's target: in-process over --model-repository (or a --light model), or the external server.</summary>
    public static async Task<ServerTarget> StartAsync(PerfOptions options)
    {
        if (!options.InProcess)
        {
            return new ServerTarget(null, null, Directory.Exists(options.ModelRepository) ? options.ModelRepository : null, options.UrlHttp!, options.UrlGrpc!);
        }
        string? temporary = null;
        var repository = options.ModelRepository;
        if (options.Light is { } light)
        {
            var file = Path.GetFullPath(Path.Combine(options.SharedDir, "models", "onnx", "light", $"light_{light}.onnx"));
            if (!File.Exists(file))
            {
                throw new ArgumentException($"{file} not found; point --shared-dir (or INFERENCE_SHARED_DIR) at the shared data folder");
            }
            repository = temporary = Path.Combine(Path.GetTempPath(), $"inference-perf-{Guid.NewGuid():N}");
            Directory.CreateDirectory(Path.Combine(repository, light, "1"));
            File.CreateSymbolicLink(Path.Combine(repository, light, "1", "model.onnx"), file);
        }
        else if (!Directory.Exists(repository))
        {
            throw new ArgumentException($"model repository '{repository}' not found (run from the repository root or pass --model-repository)");
        }
        try
        {
            return await StartInProcessAsync(repository, options.ServerLogLevel, temporary).ConfigureAwait(false);
        }
        catch when (temporary is not null)
        {
            Directory.Delete(temporary, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// The real server in this process over <paramref name="repository"/>, on free loopback ports. A
    /// <paramref name="temporaryRepository"/> is deleted when the target is disposed; <paramref name="arguments"/> are
    /// more command-line flags (e.g. <c>--model-control-mode explicit</c>).
    /// </summary>
    public static async Task<ServerTarget> StartInProcessAsync(string repository, string logLevel, string? temporaryRepository = null, IReadOnlyList<string>? arguments = null, int grpcConnections = 1)
    {
        // The server logs through configuration only: keep its console log off stdout (the report goes there) and at the chosen level.
        Environment.SetEnvironmentVariable("Logging__Console__LogToStandardErrorThreshold", "Trace");
        Environment.SetEnvironmentVariable("Logging__LogLevel__Default", logLevel);
        var app = InferenceServerApp.Create(
        [
            "--model-repository", repository, "--bind-address", "127.0.0.1",
            "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
            .. arguments ?? [],
        ],
        // The access log runs as deployed, but its lines are discarded: stdout carries the report.
        services => services.AddSingleton<IAccessLogSink>(new StreamAccessLogSink(Stream.Null)));
        await app.StartAsync().ConfigureAwait(false);
        var endpoints = app.Services.GetRequiredService<ServerEndpoints>();
        return new ServerTarget(app, temporaryRepository, repository,
            new Uri($"http://127.0.0.1:{endpoints.HttpPort}/"), new Uri($"http://127.0.0.1:{endpoints.GrpcPort}/"), new Uri($"http://127.0.0.1:{endpoints.MetricsPort}/"), grpcConnections);
    }

    /// <summary>Waits (bounded) until the model is ready, then returns its metadata.</summary>
    public async Task<ModelMetadataResponse> WaitForModelAsync(string model)
    {
        var started = Stopwatch.GetTimestamp();
        var repository = _app?.Services.GetRequiredService<ModelRepository>();
        string last = "no answer yet";
        while (Stopwatch.GetElapsedTime(started) < ReadyTimeout)
        {
            var startupDone = repository?.StartupComplete == true;
            try
            {
                var ready = await Grpc.ModelReadyAsync(new ModelReadyRequest { Name = model }, deadline: DateTime.UtcNow.AddSeconds(10)).ConfigureAwait(false);
                if (ready.Ready)
                {
                    return await Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = model }, deadline: DateTime.UtcNow.AddSeconds(10)).ConfigureAwait(false);
                }
                last = "not ready";
            }
            catch (global::Grpc.Core.RpcException e)
            {
                last = e.Status.Detail;
            }
            if (startupDone)
            {
                throw new InvalidOperationException($"model '{model}' is not ready after the server's start-up ({last}); see the server log on stderr");
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        throw new TimeoutException($"model '{model}' not ready within {ReadyTimeout} ({last})");
    }

    public IInferClient CreateClient(string protocol, string model, IReadOnlyList<InputTensor> inputs) => Connection.CreateClient(protocol, model, inputs);

    public async ValueTask DisposeAsync()
    {
        Connection.Dispose();
        if (_app is not null)
        {
            using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _app.StopAsync(stopping.Token).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
        if (_temporaryRepository is not null)
        {
            Directory.Delete(_temporaryRepository, recursive: true);
        }
    }
}
