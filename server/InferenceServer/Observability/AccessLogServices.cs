using Grpc.AspNetCore.Server;
using InferenceServer.Hosting;

namespace InferenceServer.Observability;

/// <summary>The wiring of request ids and the access log: one call on the services, one on the pipeline.</summary>
internal static class AccessLogServices
{
    /// <summary>Registers the access log when <see cref="ServerOptions.AccessLog"/> is on; its sink is stdout unless a later registration replaces it.</summary>
    public static IServiceCollection AddAccessLog(this IServiceCollection services, ServerOptions options)
    {
        if (!options.AccessLog)
        {
            return services;
        }
        services.AddSingleton<IAccessLogSink>(_ => new StreamAccessLogSink(Console.OpenStandardOutput()));
        services.AddSingleton(new AccessLogOptions());
        services.AddSingleton<AccessLogWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<AccessLogWriter>());
        services.AddSingleton<AccessLogInterceptor>();
        services.Configure<GrpcServiceOptions>(grpc => grpc.Interceptors.Add<AccessLogInterceptor>());
        return services;
    }

    /// <summary>Request ids on every request; the access log, when registered. Goes first, so that every answer is seen.</summary>
    public static IApplicationBuilder UseRequestIdsAndAccessLog(this IApplicationBuilder app)
    {
        app.UseMiddleware<RequestIdMiddleware>();
        if (app.ApplicationServices.GetService<AccessLogWriter>() is not null)
        {
            app.UseMiddleware<AccessLogMiddleware>();
        }
        return app;
    }
}
