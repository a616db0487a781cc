using InferenceServer.Http;
using System.Net;
using InferenceServer.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Perf;

/// <summary>
/// The bare echo on its own Kestrel, bound to 127.0.0.1: gRPC (HTTP/2) with <see cref="EchoGrpcService"/>, and
/// REST (HTTP/1.1) with <c>POST /v2/models/{name}/infer</c> answering the request body itself (same bytes, same
/// <c>Inference-Header-Content-Length</c>), so the REST binary payload comparison moves the same bytes each way as
/// the server does. Same Kestrel, gRPC message limits and GC settings as the server.
/// </summary>
internal sealed class EchoServer : IAsyncDisposable
{
    private const int MaxMessageBytes = 256 * 1024 * 1024;
    private const string HeaderLength = "Inference-Header-Content-Length";
    private readonly WebApplication _app;

    private EchoServer(WebApplication app, Uri http, Uri grpc)
    {
        _app = app;
        Http = http;
        Grpc = grpc;
    }

    public Uri Http { get; }

    public Uri Grpc { get; }

    public static async Task<EchoServer> StartAsync(int httpPort = 0, int grpcPort = 0)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        ListenOptions? httpListen = null, grpcListen = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = MaxMessageBytes;
            kestrel.Listen(IPAddress.Loopback, httpPort, l => { l.Protocols = HttpProtocols.Http1; httpListen = l; });
            kestrel.Listen(IPAddress.Loopback, grpcPort, l => { l.Protocols = HttpProtocols.Http2; grpcListen = l; });
        });
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = MaxMessageBytes;
            o.MaxSendMessageSize = MaxMessageBytes;
        });
        var app = builder.Build();
        app.MapGrpcService<EchoGrpcService>();
        app.MapPost("/v2/models/{name}/infer", EchoRestAsync);
        // The echo's own count of answered gRPC calls, for checking an outside client's successes.
        app.MapGet("/echo/stats", () => Results.Text($"{{\"grpc_model_infer_ok\":{EchoGrpcService.Answered}}}", "application/json"));
        await app.StartAsync().ConfigureAwait(false);
        return new EchoServer(app,
            new Uri($"http://127.0.0.1:{httpListen!.IPEndPoint!.Port}/"), new Uri($"http://127.0.0.1:{grpcListen!.IPEndPoint!.Port}/"));
    }

    /// <summary>Reads the body whole with the server's own <see cref="RequestBody"/> and writes it back.</summary>
    private static async Task EchoRestAsync(HttpContext context)
    {
        var request = context.Request;
        using var body = await RequestBody.ReadAsync(request, context.RequestAborted).ConfigureAwait(false);
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = request.ContentType ?? "application/octet-stream";
        if (request.Headers[HeaderLength].FirstOrDefault() is { } header)
        {
            response.Headers[HeaderLength] = header;
        }
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body.Memory, context.RequestAborted).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _app.StopAsync(stopping.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
