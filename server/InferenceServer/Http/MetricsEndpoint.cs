using InferenceServer.Observability;
using Prometheus;

namespace InferenceServer.Http;

/// <summary>Prometheus' text exposition of <see cref="ServerMetrics"/> at <c>/metrics</c> on the metrics (admin) port, as Triton serves it.</summary>
internal static class MetricsEndpoint
{
    public const string Path = "/metrics";

    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path, async context =>
        {
            var metrics = context.RequestServices.GetRequiredService<ServerMetrics>();
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
            await metrics.Vllm.WriteAsync(context.Response.Body, context.RequestAborted);
        });
        return app;
    }
}
