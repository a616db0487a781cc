using Grpc.Core;
using Grpc.Net.Client;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// A client's connections to one server (the real one or the echo): an HTTP/1.1 client, and
/// <see cref="GrpcConnections"/> gRPC channels, each its own HTTP/2 connection (the load's calls are spread over them
/// round robin; a channel opens a further connection only past the server's stream limit, 100 in Kestrel).
/// </summary>
internal sealed class Connection : IDisposable
{
    private const int MaxMessageBytes = 256 * 1024 * 1024;
    private readonly GrpcChannel[] _channels;
    private readonly CallInvoker[] _invokers;

    public Connection(Uri http, Uri grpc, int grpcConnections = 1)
    {
        HttpAddress = http;
        GrpcAddress = grpc;
        Http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = http, Timeout = LoadLoop.RequestTimeout };
        _channels = Enumerable.Range(0, Math.Max(1, grpcConnections)).Select(_ => GrpcChannel.ForAddress(grpc, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = true },
            MaxReceiveMessageSize = MaxMessageBytes,
            MaxSendMessageSize = MaxMessageBytes,
        })).ToArray();
        _invokers = _channels.Select(c => c.CreateCallInvoker()).ToArray();
        Grpc = new GRPCInferenceService.GRPCInferenceServiceClient(_channels[0]);
    }

    public Uri HttpAddress { get; }

    public Uri GrpcAddress { get; }

    public HttpClient Http { get; }

    public int GrpcConnections => _channels.Length;

    /// <summary>The generated client on the first channel (metadata, statistics, model control).</summary>
    public GRPCInferenceService.GRPCInferenceServiceClient Grpc { get; }

    public IInferClient CreateClient(string protocol, string model, IReadOnlyList<InputTensor> inputs) => protocol switch
    {
        "grpc" => new PreparedGrpcClient(_invokers, model, inputs),
        "rest-json" => new RestInferClient(Http, model, inputs, binary: false),
        "rest-binary" => new RestInferClient(Http, model, inputs, binary: true),
        _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, null),
    };

    /// <summary>
    /// The closed-loop load for a protocol: for gRPC, the raw HTTP/2 client (<paramref name="grpcClient"/> <c>raw</c>,
    /// over <see cref="GrpcConnections"/> connections of its own) or Grpc.Net.Client on this connection's channels (<c>dotnet</c>).
    /// </summary>
    public ILoadClient CreateLoadClient(string protocol, string model, IReadOnlyList<InputTensor> inputs, string grpcClient) =>
        protocol == "grpc" && grpcClient == GrpcClientKind.Raw
            ? new Http2.RawGrpcClient(GrpcAddress, GrpcConnections, model, inputs)
            : CreateClient(protocol, model, inputs);

    public void Dispose()
    {
        Http.Dispose();
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}

/// <summary>The harness's gRPC load clients (<c>--grpc-client</c>).</summary>
internal static class GrpcClientKind
{
    /// <summary>The hand-written HTTP/2 client (<c>Load/Http2/</c>), the default.</summary>
    public const string Raw = "raw";

    /// <summary>Grpc.Net.Client with a prepared request (<see cref="PreparedGrpcClient"/>).</summary>
    public const string Dotnet = "dotnet";

    public static string Parse(string value) => value is Raw or Dotnet ? value : throw new ArgumentException($"--grpc-client: '{value}' is not raw or dotnet");
}
