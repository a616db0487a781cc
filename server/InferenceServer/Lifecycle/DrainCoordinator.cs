using System.Collections.Concurrent;
using System.Diagnostics;
using InferenceServer.Hosting;
using InferenceServer.Http;
using InferenceServer.Observability;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace InferenceServer.Lifecycle;

/// <summary>
/// Graceful drain. ASP.NET Core stops listening the moment it is told to stop; a pod in a mesh must not, because the
/// mesh keeps sending it requests for a few seconds after the endpoint is removed. So, on <see cref="BeginDrain"/>:
/// <list type="number">
/// <item>readiness fails at once (<see cref="ServerLifecycle.IsReady"/>);</item>
/// <item>for <see cref="DrainOptions.DelaySeconds"/> new requests are still served, with <c>Connection: close</c> on
/// HTTP/1.1 and GOAWAY on HTTP/2, so clients and sidecars reconnect elsewhere;</item>
/// <item>then the listeners close (the host stops); accepted requests — queued, running, streaming — finish, and new
/// requests on connections still open get 503 / UNAVAILABLE;</item>
/// <item>the process exits once idle, or after <see cref="DrainOptions.TimeoutSeconds"/>, logging what was cut.</item>
/// </list>
/// </summary>
public sealed partial class DrainCoordinator
{
    private readonly ServerLifecycle _lifecycle;
    private readonly DrainOptions _options;
    private readonly IHostApplicationLifetime _application;
    private readonly ServerMetrics _metrics;
    private readonly ServerEndpoints _endpoints;
    private readonly ILogger<DrainCoordinator> _logger;
    private readonly ConcurrentDictionary<string, IConnectionLifetimeNotificationFeature> _http2Connections = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<HttpContext, long> _active = new(ReferenceEqualityComparer.Instance);
    private readonly CancellationTokenSource _skipDelay = new();
    private long _http2ConnectionsAccepted;
    private readonly TaskCompletionSource _closing = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates the coordinator (one per server).</summary>
    public DrainCoordinator(
        ServerLifecycle lifecycle, DrainOptions options, IHostApplicationLifetime application, ServerMetrics metrics, ServerEndpoints endpoints, ILogger<DrainCoordinator> logger)
    {
        _lifecycle = lifecycle;
        _options = options;
        _application = application;
        _metrics = metrics;
        _endpoints = endpoints;
        _logger = logger;
    }

    /// <summary>HTTP/2 (gRPC) connections accepted so far; a client told to go away opens a new one.</summary>
    public long Http2ConnectionsAccepted => Interlocked.Read(ref _http2ConnectionsAccepted);

    /// <summary>Requests being served now.</summary>
    public int ActiveRequests => _active.Count;

    /// <summary>Completes when the drain delay is over and the host has been told to stop (its listeners then close).</summary>
    public Task Closing => _closing.Task;

    /// <summary>Starts the drain; false (and nothing happens) when one is already under way.</summary>
    public bool BeginDrain()
    {
        if (!_lifecycle.BeginDrain())
        {
            return false;
        }
        Log.DrainStarted(_logger, _options.DelaySeconds, _options.TimeoutSeconds, _active.Count);
        foreach (var connection in _http2Connections.Values)
        {
            connection.RequestClose();
        }
        _ = RunAsync();
        return true;
    }

    /// <summary>Ends the drain delay early (a second signal): the listeners close now.</summary>
    public void SkipDelay()
    {
        if (_lifecycle.Phase == DrainPhase.Draining)
        {
            Log.DelaySkipped(_logger);
            _skipDelay.Cancel();
        }
    }

    private async Task RunAsync()
    {
        try
        {
            await Task.Delay(_options.Delay, _skipDelay.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _lifecycle.Close();
        Log.ListenersClosing(_logger, _active.Count);
        // The host stops the server: Kestrel closes its listeners and waits for the open requests, up to HostOptions.ShutdownTimeout (the drain timeout).
        _application.StopApplication();
        _closing.TrySetResult();
        await Task.Delay(_options.Timeout, CancellationToken.None).ConfigureAwait(false);
        // The drain timeout is ours to enforce (the host's own stop timeout is a few seconds later, as a backstop): say
        // what is cut, then cut it.
        var active = _active.ToArray();
        if (active.Length > 0)
        {
            var now = Stopwatch.GetTimestamp();
            var cut = active.Select(a => $"{a.Key.Request.Method} {a.Key.Request.Path} ({Stopwatch.GetElapsedTime(a.Value, now).TotalSeconds:0.0} s)");
            Log.RequestsCut(_logger, _options.TimeoutSeconds, active.Length, string.Join(", ", cut));
            foreach (var request in active)
            {
                request.Key.Abort();
            }
        }
    }

    /// <summary>Connection middleware of the HTTP/2 listener: keeps each connection's handle so a drain can send it GOAWAY.</summary>
    internal ConnectionDelegate TrackHttp2Connections(ConnectionDelegate next) => async connection =>
    {
        Interlocked.Increment(ref _http2ConnectionsAccepted);
        var lifetime = connection.Features.Get<IConnectionLifetimeNotificationFeature>();
        if (lifetime is not null)
        {
            _http2Connections[connection.ConnectionId] = lifetime;
        }
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            _http2Connections.TryRemove(connection.ConnectionId, out _);
        }
    };

    /// <summary>Request middleware: counts requests in flight, asks connections to close while draining, and turns new requests away once closing.</summary>
    internal Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var phase = _lifecycle.Phase;
        if (phase != DrainPhase.Serving)
        {
            if (phase == DrainPhase.Closing && !IsProbeOrMetrics(context))
            {
                return RejectAsync(context);
            }
            AskToClose(context);
        }
        return TrackAsync(context, next);
    }

    private async Task TrackAsync(HttpContext context, RequestDelegate next)
    {
        _active[context] = Stopwatch.GetTimestamp();
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            _active.TryRemove(context, out _);
        }
    }

    private void AskToClose(HttpContext context)
    {
        if (HttpProtocol.IsHttp2(context.Request.Protocol))
        {
            // GOAWAY: the streams already open finish; the client opens a new connection (elsewhere, once the endpoint is gone) for the next call.
            Http2Connection(context)?.RequestClose();
        }
        else
        {
            context.Response.Headers.Connection = "close";
        }
    }

    private IConnectionLifetimeNotificationFeature? Http2Connection(HttpContext context) =>
        context.Connection.Id is { } id && _http2Connections.TryGetValue(id, out var connection) ? connection : null;

    // Liveness and metrics keep answering while closing: a draining pod is alive, and its last scrape is worth having.
    private bool IsProbeOrMetrics(HttpContext context) =>
        context.Connection.LocalPort == _endpoints.MetricsPort
        && (context.Request.Path.StartsWithSegments("/v2/health") || context.Request.Path.StartsWithSegments(MetricsEndpoint.Path));

    private Task RejectAsync(HttpContext context)
    {
        _metrics.Rejected(RequestMetrics.Drain);
        const string message = "the server is shutting down; retry on another replica";
        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
        {
            // A trailers-only gRPC response: UNAVAILABLE, which clients and the mesh retry elsewhere.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = "14";
            context.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            Http2Connection(context)?.RequestClose();
            return Task.CompletedTask;
        }
        context.Response.Headers.Connection = "close";
        return RestErrorMiddleware.WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, message);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Draining: readiness now fails; serving new requests for {Delay} s with connections asked to close, then {Timeout} s for accepted requests to finish ({Active} in flight)")]
        public static partial void DrainStarted(ILogger logger, double delay, double timeout, int active);

        [LoggerMessage(2, LogLevel.Warning, "Drain delay over: closing the listeners; {Active} request(s) in flight will be allowed to finish")]
        public static partial void ListenersClosing(ILogger logger, int active);

        [LoggerMessage(3, LogLevel.Error, "Drain timeout of {Timeout} s expired: cutting {Count} request(s) still running: {Requests}")]
        public static partial void RequestsCut(ILogger logger, double timeout, int count, string requests);

        [LoggerMessage(4, LogLevel.Warning, "Second shutdown signal: skipping the rest of the drain delay")]
        public static partial void DelaySkipped(ILogger logger);
    }
}
