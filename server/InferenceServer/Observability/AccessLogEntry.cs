using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.Observability;

/// <summary>
/// One request's access log record while it runs: the model and version the protocol adapters name, and the body bytes
/// that crossed, counted by wrapping the request and response body features. A request feature of its own type.
/// </summary>
internal sealed class AccessLogEntry : IRequestBodyPipeFeature, IHttpResponseBodyFeature
{
    private readonly IRequestBodyPipeFeature? _requestPipe;
    private readonly PipeReader? _innerReader;
    private readonly IHttpResponseBodyFeature _innerResponse;
    private readonly Stream _innerRequestStream;
    private readonly CountingStream? _requestStream;
    private CountingPipeReader? _reader;
    private CountingStream? _responseStream;
    private CountingPipeWriter? _writer;
    private long _sentFileBytes;
    private bool _served;

    private AccessLogEntry(HttpContext context)
    {
        var features = context.Features;
        _requestPipe = features.Get<IRequestBodyPipeFeature>();
        // Taken before the body stream is replaced: Kestrel would otherwise wrap the counting stream in a new reader.
        _innerReader = _requestPipe?.Reader;
        _innerResponse = features.Get<IHttpResponseBodyFeature>()!;
        _innerRequestStream = context.Request.Body;
        if (features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody != false)
        {
            _requestStream = new CountingStream(_innerRequestStream);
        }
    }

    /// <summary>The model the request is for; empty when none applies.</summary>
    public string Model { get; private set; } = "";

    /// <summary>The version that served the request, or the requested one; empty when none applies or none was asked for.</summary>
    public string Version { get; private set; } = "";

    /// <summary>Request body bytes the server read (REST body; gRPC length-prefixed messages).</summary>
    public long BytesIn => (_reader?.Count ?? 0) + (_requestStream?.Count ?? 0);

    /// <summary>Response body bytes the server wrote.</summary>
    public long BytesOut => (_writer?.Count ?? 0) + (_responseStream?.Count ?? 0) + _sentFileBytes;

    Stream IHttpResponseBodyFeature.Stream => _responseStream ??= new CountingStream(_innerResponse.Stream);

    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= new CountingPipeWriter(_innerResponse.Writer);

    PipeReader IRequestBodyPipeFeature.Reader => _reader ??= new CountingPipeReader(_innerReader!);

    /// <summary>Starts counting the request's bodies; <see cref="Detach"/> puts the server's features back.</summary>
    public static AccessLogEntry Attach(HttpContext context)
    {
        var entry = new AccessLogEntry(context);
        var features = context.Features;
        features.Set(entry);
        if (entry._requestPipe is not null)
        {
            features.Set<IRequestBodyPipeFeature>(entry);
        }
        features.Set<IHttpResponseBodyFeature>(entry);
        if (entry._requestStream is not null)
        {
            context.Request.Body = entry._requestStream;
        }
        return entry;
    }

    public void Detach(HttpContext context)
    {
        var features = context.Features;
        features.Set<AccessLogEntry>(null);
        if (_requestPipe is not null)
        {
            features.Set(_requestPipe);
        }
        features.Set(_innerResponse);
        context.Request.Body = _innerRequestStream;
    }

    /// <summary>
    /// Names the model (and version) a request is for; a protocol adapter calls it with the requested model and again
    /// with the version that served, when it knows it. Does nothing when the access log is off.
    /// </summary>
    public static void SetModel(HttpContext context, string model, string? version) => context.Features.Get<AccessLogEntry>()?.SetModel(model, version);

    public void SetModel(string model, string? version)
    {
        Model = model;
        Version = version ?? "";
    }

    /// <summary>Records the model version that served, once: a stream keeps the first.</summary>
    public void SetServed(string model, string version)
    {
        if (!_served && version.Length > 0)
        {
            _served = true;
            SetModel(model, version);
        }
    }

    /// <summary>Records the requested model unless one is known already (a stream keeps its first request's).</summary>
    public void SetRequested(string model, string version)
    {
        if (Model.Length == 0)
        {
            SetModel(model, version);
        }
    }

    void IHttpResponseBodyFeature.DisableBuffering() => _innerResponse.DisableBuffering();

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => _innerResponse.StartAsync(cancellationToken);

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken)
    {
        _sentFileBytes += count ?? Math.Max(0, new FileInfo(path).Length - offset);
        return _innerResponse.SendFileAsync(path, offset, count, cancellationToken);
    }

    Task IHttpResponseBodyFeature.CompleteAsync() => _innerResponse.CompleteAsync();
}
