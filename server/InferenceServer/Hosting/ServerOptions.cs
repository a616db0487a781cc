namespace InferenceServer.Hosting;

/// <summary>Listening ports and request limits (section "Server" of the configuration).</summary>
public sealed class ServerOptions
{
    /// <summary>The address every port binds to.</summary>
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>REST (Open Inference Protocol v2, KServe v1): HTTP/1.1.</summary>
    public int HttpPort { get; set; } = 8000;

    /// <summary>gRPC (inference.GRPCInferenceService): HTTP/2 cleartext.</summary>
    public int GrpcPort { get; set; } = 8001;

    /// <summary>Metrics and admin: HTTP/1.1.</summary>
    public int MetricsPort { get; set; } = 8002;

    /// <summary>Largest REST request body; larger ones get 413.</summary>
    public long MaxRequestBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Largest gRPC message received or sent; larger ones get RESOURCE_EXHAUSTED.</summary>
    public int GrpcMaxMessageBytes { get; set; } = 256 * 1024 * 1024;

    /// <summary>One JSON line per request on stdout (see <see cref="Observability.AccessLogMiddleware"/>).</summary>
    public bool AccessLog { get; set; } = true;
}
