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

    public void Dispose()
    {
        Http.Dispose();
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}
