using System.Text;
using InferenceServer.Backends;
using InferenceServer.Hosting;
using InferenceServer.Lifecycle;
using InferenceServer.Observability;
using InferenceServer.Repository;
using InferenceServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Tests.Hosting;

/// <summary>
/// The drain's request middleware once the listeners are closing: a request that still arrives on an open connection
/// is turned away with 503 / UNAVAILABLE (which the mesh retries elsewhere), while liveness and metrics still answer.
/// </summary>
public sealed class DrainCoordinatorTests
{
    [Fact]
    public async Task Once_closing_new_requests_get_503_or_unavailable_and_probes_still_answer()
    {
        var metrics = new ServerMetrics();
        using var repository = new ModelRepository(new ModelRepositoryOptions { Path = Paths.NewTempDirectory("empty-repo") }, Array.Empty<IModelBackend>(), NullLogger<ModelRepository>.Instance, metrics);
        var lifecycle = new ServerLifecycle(repository, metrics);
        var application = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        var drain = new DrainCoordinator(lifecycle, new DrainOptions { DelaySeconds = 0, TimeoutSeconds = 0 }, application, metrics, new ServerEndpoints(), NullLogger<DrainCoordinator>.Instance);

        var passed = 0;
        RequestDelegate next = _ => { passed++; return Task.CompletedTask; };
        await drain.InvokeAsync(Request("/v2/models/simple/infer", "application/json"), next);
        Assert.Equal(1, passed);

        Assert.True(drain.BeginDrain());
        await drain.Closing.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(DrainPhase.Closing, lifecycle.Phase);
        Assert.True(application.ApplicationStopping.IsCancellationRequested, "the host was not told to stop");

        var rest = Request("/v2/models/simple/infer", "application/json");
        await drain.InvokeAsync(rest, next);
        Assert.Equal(503, rest.Response.StatusCode);
        Assert.Equal("close", rest.Response.Headers.Connection.ToString());
        await rest.Response.BodyWriter.FlushAsync();
        rest.Response.Body.Position = 0;
        Assert.Equal("{\"error\":\"the server is shutting down; retry on another replica\"}", await new StreamReader(rest.Response.Body).ReadToEndAsync());

        var grpc = Request("/inference.GRPCInferenceService/ModelInfer", "application/grpc");
        await drain.InvokeAsync(grpc, next);
        Assert.Equal(200, grpc.Response.StatusCode);
        Assert.Equal("14", grpc.Response.Headers["grpc-status"].ToString());
        Assert.Equal(0, grpc.Response.Body.Length);
        Assert.Equal(1, passed);

        // The admin port's probes and metrics are not turned away (ServerEndpoints without listeners reports port 0).
        await drain.InvokeAsync(Request("/v2/health/live", null), next);
        await drain.InvokeAsync(Request("/metrics", null), next);
        Assert.Equal(3, passed);

        Assert.Equal(2, metrics.Rejections.WithLabels("", "", RequestMetrics.Drain).Value);
        Assert.Equal(2, metrics.DrainPhase.Value);
    }

    private static DefaultHttpContext Request(string path, string? contentType)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Path = path;
        context.Request.Protocol = contentType == "application/grpc" ? "HTTP/2" : "HTTP/1.1";
        context.Request.ContentType = contentType;
        context.Response.Body = new MemoryStream();
        context.Connection.LocalPort = 0;
        return context;
    }
}
