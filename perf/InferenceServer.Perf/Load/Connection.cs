using Grpc.Net.Client;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>A client's connections to one server (the real one or the echo): an HTTP/1.1 client and a gRPC channel.</summary>
internal sealed class Connection : IDisposable
{
    private const int MaxMessageBytes = 256 * 1024 * 1024;
    private readonly GrpcChannel _channel;

    public Connection(Uri http, Uri grpc)
    {
        HttpAddress = http;
        GrpcAddress = grpc;
        Http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = http, Timeout = LoadLoop.RequestTimeout };
        _channel = GrpcChannel.ForAddress(grpc, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = true },
            MaxReceiveMessageSize = MaxMessageBytes,
            MaxSendMessageSize = MaxMessageBytes,
        });
        Grpc = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    public Uri HttpAddress { get; }

    public Uri GrpcAddress { get; }

    public HttpClient Http { get; }

    public GRPCInferenceService.GRPCInferenceServiceClient Grpc { get; }

    public IInferClient CreateClient(string protocol, string model, IReadOnlyList<InputTensor> inputs) => protocol switch
    {
        "grpc" => new GrpcInferClient(Grpc, model, inputs),
        "rest-json" => new RestInferClient(Http, model, inputs, binary: false),
        "rest-binary" => new RestInferClient(Http, model, inputs, binary: true),
        _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, null),
    };

    public void Dispose()
    {
        Http.Dispose();
        _channel.Dispose();
    }
}
