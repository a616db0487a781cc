using System.Collections.Concurrent;
using System.Net;
using Grpc.Net.Client;
using InferenceServer.Client;
using InferenceServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Client;

/// <summary>The protocol (and REST encoding) a client test runs over.</summary>
public enum ClientProtocol
{
    Grpc,
    RestJson,
    RestBinary,
}

/// <summary>Clients of a <see cref="RunningServer"/> over a counting handler, so tests see every attempt on the wire.</summary>
internal sealed class TestClient : IDisposable
{
    private readonly GrpcChannel? _channel;

    public TestClient(RunningServer server, ClientProtocol protocol, InferenceClientOptions? options = null, HttpMessageHandler? inner = null)
    {
        Counter = new CountingHandler(inner ?? new SocketsHttpHandler());
        options ??= new InferenceClientOptions();
        if (protocol == ClientProtocol.Grpc)
        {
            _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.Endpoints.GrpcPort}", new GrpcChannelOptions { HttpHandler = Counter });
            Client = new InferenceGrpcClient(_channel, options);
        }
        else
        {
            var http = new HttpClient(Counter) { BaseAddress = new Uri($"http://127.0.0.1:{server.Endpoints.HttpPort}") };
            Client = new InferenceHttpClient(http, new InferenceClientOptions
            {
                DefaultTimeout = options.DefaultTimeout,
                Retry = options.Retry,
                Tenant = options.Tenant,
                TenantHeader = options.TenantHeader,
                TimeProvider = options.TimeProvider,
                HttpEncoding = protocol == ClientProtocol.RestBinary ? HttpTensorEncoding.Binary : HttpTensorEncoding.Json,
            }, ownsHttpClient: true);
        }
    }

    public IInferenceClient Client { get; }

    public CountingHandler Counter { get; }

    public void Dispose()
    {
        Client.Dispose();
        _channel?.Dispose();
    }
}

/// <summary>Counts the HTTP requests (REST calls and gRPC calls alike) that go out, by path.</summary>
internal sealed class CountingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private readonly ConcurrentQueue<string> _paths = new();

    public IReadOnlyList<string> Paths => _paths.ToArray();

    public int Count(string pathEnding) => _paths.Count(p => p.EndsWith(pathEnding, StringComparison.Ordinal));

    /// <summary>How many requests used the binary data extension (carried Inference-Header-Content-Length).</summary>
    public int BinaryRequests => _binary;

    private int _binary;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        _paths.Enqueue(request.RequestUri!.AbsolutePath);
        if (request.Content?.Headers.Contains("Inference-Header-Content-Length") == true)
        {
            Interlocked.Increment(ref _binary);
        }
        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>Answers the first <paramref name="failures"/> requests itself with <paramref name="status"/> (and a Retry-After), then passes through.</summary>
internal sealed class FailingFirstHandler(int failures, HttpStatusCode status, TimeSpan? retryAfter) : DelegatingHandler(new SocketsHttpHandler())
{
    private int _left = failures;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (Interlocked.Decrement(ref _left) >= 0)
        {
            var response = new HttpResponseMessage(status)
            {
                Content = new StringContent("{\"error\":\"stubbed " + (int)status + "\"}", System.Text.Encoding.UTF8, "application/json"),
                RequestMessage = request,
            };
            if (retryAfter is { } wait)
            {
                response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(wait);
            }
            return Task.FromResult(response);
        }
        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>
/// A clock for retry tests: a timer due within <see cref="FireWithin"/> fires at once (advancing the clock by its due
/// time) and its due time is recorded, so the waits a client asks for are observed without waiting; a longer timer
/// (such as a call's deadline) never fires.
/// </summary>
internal sealed class RecordingTimeProvider : TimeProvider
{
    private readonly ConcurrentQueue<TimeSpan> _waits = new();
    private long _ticks;

    public TimeSpan FireWithin { get; init; } = TimeSpan.FromMinutes(1);

    public IReadOnlyList<TimeSpan> Waits => _waits.ToArray();

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(Interlocked.Read(ref _ticks));

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        if (dueTime != Timeout.InfiniteTimeSpan && dueTime <= FireWithin)
        {
            _waits.Enqueue(dueTime);
            Interlocked.Add(ref _ticks, dueTime.Ticks);
            ThreadPool.QueueUserWorkItem(_ => callback(state));
        }
        return new NeverTimer();
    }

    private sealed class NeverTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => true;

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>Records the mesh headers of every request the server receives (on every port), by path.</summary>
public sealed class HeaderCapture
{
    private readonly ConcurrentQueue<(string Path, string? ModelName, string? ModelVersion, string? Tenant, string? RequestId)> _seen = new();

    public IReadOnlyList<(string Path, string? ModelName, string? ModelVersion, string? Tenant, string? RequestId)> Seen => _seen.ToArray();

    /// <summary>Registers the capturing middleware in front of the server's pipeline.</summary>
    public void Register(IServiceCollection services) => services.AddSingleton<IStartupFilter>(new Filter(this));

    private sealed class Filter(HeaderCapture capture) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                var h = context.Request.Headers;
                capture._seen.Enqueue((context.Request.Path.Value ?? "",
                    h["x-model-name"].FirstOrDefault(), h["x-model-version"].FirstOrDefault(), h["x-tenant-id"].FirstOrDefault(), h["x-request-id"].FirstOrDefault()));
                await nextMiddleware(context);
            });
            next(app);
        };
    }
}
