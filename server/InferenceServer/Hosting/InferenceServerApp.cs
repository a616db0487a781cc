using System.Net;
using InferenceServer.Backends;
using InferenceServer.Generation;
using InferenceServer.Observability;
using InferenceServer.Grpc;
using InferenceServer.Http;
using InferenceServer.Http.OpenAi;
using InferenceServer.Inference;
using InferenceServer.Lifecycle;
using InferenceServer.Repository;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace InferenceServer.Hosting;

/// <summary>Composes the server: configuration, the core services, Kestrel's three ports and the protocol adapters.</summary>
public static class InferenceServerApp
{
    /// <summary>
    /// Builds the application from command-line flags (see <see cref="CommandLine"/>); throws <see cref="ArgumentException"/>
    /// on a bad flag. <paramref name="configureServices"/> may add services, such as further <see cref="IModelBackend"/>s.
    /// <paramref name="configuration"/> adds keys over every other source: how tests set what a deployment sets in the
    /// environment (such as the <c>OTEL_*</c> variables) without touching the process environment other servers share.
    /// </summary>
    /// <summary>
    /// The server's configuration sources, lowest precedence first: <c>appsettings.json</c> in the working directory,
    /// <c>INFERENCE_Section__Key</c> variables, the flags' <c>INFERENCE_*</c> twins, the flags. Throws
    /// <see cref="ArgumentException"/> on a bad flag. The health probe reads the same sources, so it finds the server
    /// wherever they put it.
    /// </summary>
    public static void AddConfigurationSources(IConfigurationBuilder configuration, IReadOnlyList<string> args)
    {
        configuration.AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true);
        configuration.AddEnvironmentVariables("INFERENCE_");
        configuration.AddInMemoryCollection(CommandLine.FromEnvironment(Environment.GetEnvironmentVariables()));
        configuration.AddInMemoryCollection(CommandLine.Parse(args));
    }

    public static WebApplication Create(string[] args, Action<IServiceCollection>? configureServices = null, IEnumerable<KeyValuePair<string, string?>>? configuration = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = Directory.GetCurrentDirectory() });
        AddConfigurationSources(builder.Configuration, args);
        builder.Configuration.AddInMemoryCollection(configuration);
        // Per-request framework logs cost about a quarter of the throughput of a small model (perf/RESULTS.md);
        // appsettings.json's "Logging" section can turn them back on.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Microsoft.AspNetCore"] = builder.Configuration["Logging:LogLevel:Microsoft.AspNetCore"] ?? "Warning",
            ["Logging:LogLevel:Grpc"] = builder.Configuration["Logging:LogLevel:Grpc"] ?? "Warning",
        });

        ServerOptions server;
        ModelRepositoryOptions repository;
        OpenAiOptions openAi;
        DrainOptions drain;
        RequestLimits limits;
        Admission.AdmissionOptions admission;
        Mesh.SelfRateLimitOptions selfRateLimit;
        try
        {
            server = builder.Configuration.GetSection("Server").Get<ServerOptions>() ?? new ServerOptions();
            repository = builder.Configuration.GetSection("Repository").Get<ModelRepositoryOptions>() ?? new ModelRepositoryOptions();
            openAi = builder.Configuration.GetSection("OpenAi").Get<OpenAiOptions>() ?? new OpenAiOptions();
            drain = builder.Configuration.GetSection("Drain").Get<DrainOptions>() ?? new DrainOptions();
            limits = builder.Configuration.GetSection("Limits").Get<RequestLimits>() ?? new RequestLimits();
            admission = builder.Configuration.GetSection("Admission").Get<Admission.AdmissionOptions>() ?? new Admission.AdmissionOptions();
            selfRateLimit = builder.Configuration.GetSection(Mesh.SelfRateLimitOptions.Section).Get<Mesh.SelfRateLimitOptions>() ?? new Mesh.SelfRateLimitOptions();
        }
        catch (InvalidOperationException e)
        {
            // A value of the wrong type ("--http-port abc"): say which, without a stack trace.
            throw new ArgumentException(e.Message, e);
        }
        drain.Validate();
        limits.Validate();
        builder.Services.AddSingleton(limits);
        admission.Validate();
        selfRateLimit.Validate();
        builder.Services.AddSingleton(server);
        builder.Services.AddSingleton(drain);
        builder.Services.AddSingleton(openAi);
        builder.Services.AddSingleton(Options.Create(repository));
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<ModelRepositoryOptions>>().Value);
        builder.Services.AddModelBackends();
        builder.Services.AddSingleton<ModelRepository>();
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddSingleton(admission);
        builder.Services.AddSingleton<Admission.AdmissionController>();
        builder.Services.AddSingleton<InferenceDispatcher>();
        builder.Services.AddSingleton<IInferenceDispatcher>(sp => sp.GetRequiredService<InferenceDispatcher>());
        builder.Services.AddSingleton<ITextGenerator>(sp => sp.GetRequiredService<InferenceDispatcher>());
        builder.Services.AddHostedService<RepositoryLoader>();
        builder.Services.AddSingleton<ServerLifecycle>();
        builder.Services.AddSingleton<DrainCoordinator>();
        // Signals start a graceful drain (replacing the console lifetime); the drain timeout bounds the host's stop.
        builder.Services.AddSingleton<IHostLifetime, SignalLifetime>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = drain.Timeout + DrainOptions.HostBackstop);
        builder.Services.AddSingleton(builder.Configuration.GetSection("Metrics").Get<MetricsOptions>() ?? new MetricsOptions());
        builder.Services.AddHostedService<GpuMetricsService>();
        if (selfRateLimit.Enabled)
        {
            // The in-pod rate-limit option: this pod's share of the global budgets, following the Kubernetes API.
            builder.Services.AddSingleton(selfRateLimit);
            builder.Services.AddHostedService<Mesh.SelfRateLimitService>();
        }
        builder.AddTracing();
        builder.Services.AddAccessLog(server);
        configureServices?.Invoke(builder.Services);

        var endpoints = new ServerEndpoints();
        builder.Services.AddSingleton(endpoints);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // gRPC enforces its own message limit; the body limit is set per REST request below.
            kestrel.Limits.MaxRequestBodySize = null;
            var address = IPAddress.Parse(server.BindAddress);
            kestrel.Listen(address, server.HttpPort, l => { l.Protocols = HttpProtocols.Http1; endpoints.Http = l; });
            kestrel.Listen(address, server.GrpcPort, l =>
            {
                l.Protocols = HttpProtocols.Http2;
                l.Use(next => l.ApplicationServices.GetRequiredService<DrainCoordinator>().TrackHttp2Connections(next));
                endpoints.Grpc = l;
            });
            kestrel.Listen(address, server.MetricsPort, l => { l.Protocols = HttpProtocols.Http1; endpoints.Metrics = l; });
        });
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = server.GrpcMaxMessageBytes;
            grpc.MaxSendMessageSize = server.GrpcMaxMessageBytes;
            grpc.Interceptors.Add<ErrorInterceptor>();
        });

        var app = builder.Build();
        app.UseRequestIdsAndAccessLog();
        var coordinator = app.Services.GetRequiredService<DrainCoordinator>();
        app.Use(coordinator.InvokeAsync);
        app.Use(PortRouting.Create(endpoints, server));
        app.UseMiddleware<RestErrorMiddleware>();
        app.MapOpenInferenceRest();
        app.MapKServeV1();
        app.MapTritonGenerate();
        app.MapOpenAi();
        app.MapMetrics();
        app.MapAdmissionAdmin();
        app.MapGrpcService<InferenceGrpcService>();
        app.MapGrpcService<HealthGrpcService>();
        return app;
    }
}

/// <summary>
/// Keeps each port to its protocol: gRPC calls only on the gRPC port, health checks and metrics only on the admin port, the REST API on the REST port with its body-size limit.
/// </summary>
internal static class PortRouting
{
    public static Func<HttpContext, RequestDelegate, Task> Create(ServerEndpoints endpoints, ServerOptions options) => (context, next) =>
    {
        var port = context.Connection.LocalPort;
        if (port == endpoints.GrpcPort)
        {
            return context.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true
                ? next(context)
                : RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status404NotFound, "the gRPC port serves gRPC only; REST is on the HTTP port");
        }
        var path = context.Request.Path;
        if (port == endpoints.MetricsPort && !path.StartsWithSegments("/v2/health") && !path.StartsWithSegments(MetricsEndpoint.Path)
            && !path.StartsWithSegments(AdmissionEndpoints.Path))
        {
            return RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status404NotFound, "the admin port serves /metrics, /v2/health/live, /v2/health/ready and /v2/admin");
        }
        if (port != endpoints.MetricsPort && path.StartsWithSegments(AdmissionEndpoints.Path))
        {
            return RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status404NotFound, "the admin API is served on the metrics/admin port only");
        }
        if (port != endpoints.MetricsPort && path.StartsWithSegments(MetricsEndpoint.Path))
        {
            return RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status404NotFound, "metrics are served on the metrics port");
        }
        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = options.MaxRequestBytes;
        }
        return next(context);
    };
}

/// <summary>The listening endpoints, with the ports actually bound once the server has started (port 0 picks a free one).</summary>
public sealed class ServerEndpoints
{
    internal ListenOptions? Http { get; set; }
    internal ListenOptions? Grpc { get; set; }
    internal ListenOptions? Metrics { get; set; }

    /// <summary>The REST port.</summary>
    public int HttpPort => Http?.IPEndPoint?.Port ?? 0;

    /// <summary>The gRPC port.</summary>
    public int GrpcPort => Grpc?.IPEndPoint?.Port ?? 0;

    /// <summary>The metrics and admin port.</summary>
    public int MetricsPort => Metrics?.IPEndPoint?.Port ?? 0;
}

/// <summary>Loads the start-up models in the background, so the server is live at once and ready when they are.</summary>
internal sealed class RepositoryLoader(ModelRepository repository) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => repository.LoadStartupModelsAsync(stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        repository.Dispose();
    }
}
