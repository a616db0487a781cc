using System.Net;
using InferenceServer.Backends;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Grpc;
using InferenceServer.Http;
using InferenceServer.Inference;
using InferenceServer.Repository;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace InferenceServer.Hosting;

/// <summary>Composes the server: configuration, the core services, Kestrel's three ports and the protocol adapters.</summary>
public static class InferenceServerApp
{
    /// <summary>Builds the application from command-line flags (see <see cref="CommandLine"/>); throws <see cref="ArgumentException"/> on a bad flag.</summary>
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = Directory.GetCurrentDirectory() });
        builder.Configuration.AddJsonFile("appsettings.json", optional: true);
        builder.Configuration.AddEnvironmentVariables("INFERENCE_");
        builder.Configuration.AddInMemoryCollection(CommandLine.FromEnvironment(Environment.GetEnvironmentVariables()));
        builder.Configuration.AddInMemoryCollection(CommandLine.Parse(args));

        var server = builder.Configuration.GetSection("Server").Get<ServerOptions>() ?? new ServerOptions();
        builder.Services.AddSingleton(server);
        builder.Services.AddSingleton(Options.Create(builder.Configuration.GetSection("Repository").Get<ModelRepositoryOptions>() ?? new ModelRepositoryOptions()));
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<ModelRepositoryOptions>>().Value);
        builder.Services.AddSingleton<IModelBackend, OnnxRuntimeBackend>();
        builder.Services.AddSingleton<ModelRepository>();
        builder.Services.AddSingleton<InferenceDispatcher>();
        builder.Services.AddHostedService<RepositoryLoader>();

        var endpoints = new ServerEndpoints();
        builder.Services.AddSingleton(endpoints);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = server.MaxRequestBytes;
            var address = IPAddress.Parse(server.BindAddress);
            kestrel.Listen(address, server.HttpPort, l => { l.Protocols = HttpProtocols.Http1; endpoints.Http = l; });
            kestrel.Listen(address, server.GrpcPort, l => { l.Protocols = HttpProtocols.Http2; endpoints.Grpc = l; });
            kestrel.Listen(address, server.MetricsPort, l => { l.Protocols = HttpProtocols.Http1; endpoints.Metrics = l; });
        });
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = server.GrpcMaxMessageBytes;
            grpc.MaxSendMessageSize = server.GrpcMaxMessageBytes;
            grpc.Interceptors.Add<ErrorInterceptor>();
        });

        var app = builder.Build();
        // The admin port answers health checks only (metrics join it later); the inference API lives on the REST and gRPC ports.
        app.UseWhen(
            context => context.Connection.LocalPort == endpoints.MetricsPort && !context.Request.Path.StartsWithSegments("/v2/health"),
            admin => admin.Run(context => RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status404NotFound, "the admin port serves /v2/health/live and /v2/health/ready")));
        app.UseMiddleware<RestErrorMiddleware>();
        app.MapOpenInferenceRest();
        app.MapKServeV1();
        app.MapGrpcService<InferenceGrpcService>();
        return app;
    }
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
