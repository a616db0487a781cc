using System.Net;
using Google.Protobuf;

namespace InferenceServer.Perf.Http2;

/// <summary>
/// The harness's default gRPC load (<c>--grpc-client raw</c>): ModelInfer over hand-written HTTP/2 connections
/// (<see cref="Http2LoadConnection"/>), the request encoded once, the calls spread over <c>connections</c> connections
/// (concurrency / connections streams each, the remainder on the first ones), each driven by a thread of its own in a
/// closed loop. Every measurement opens its connections before its window starts and closes them after its last
/// call, as h2load does per run. The same request bytes as the Grpc.Net.Client path (<see cref="PreparedGrpcClient"/>)
/// and h2load's body file.
/// </summary>
internal sealed class RawGrpcClient : ILoadClient, IGrpcRequest
{
    private readonly EndPoint _endpoint;
    private readonly int _connections;
    private readonly byte[] _message;
    private readonly GrpcRequestTemplate _template;
    private long _lastCount;

    public RawGrpcClient(Uri grpc, int connections, string model, IReadOnlyList<InputTensor> inputs)
    {
        var address = IPAddress.TryParse(grpc.Host, out var ip) ? ip : Dns.GetHostAddresses(grpc.Host).First(IPAddress.IsLoopback);
        _endpoint = new IPEndPoint(address, grpc.Port);
        _connections = Math.Max(1, connections);
        _message = PreparedGrpcClient.Build(model, inputs).ToByteArray();
        _template = GrpcRequestTemplate.Create(grpc.Authority, H2Load.Path, _message);
    }

    public string Protocol => "grpc";

    public byte[] FramedRequest() => _template.Body;

    public async Task<Measurement> RunClosedAsync(int concurrency, TimeSpan duration, long maxRequests)
    {
        HpackSelfCheck.EnsurePassed();
        var count = Math.Clamp(_connections, 1, concurrency);
        var connections = new List<Http2LoadConnection>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var streams = concurrency / count + (i < concurrency % count ? 1 : 0);
                connections.Add(await Task.Run(() => Http2LoadConnection.Open(_endpoint, _template, streams)).ConfigureAwait(false));
            }
            // The latency lists are sized from the previous measurement (a warm-up precedes every measured one), so that
            // they do not grow, and allocate, inside the window.
            var capacity = (int)Math.Min(Math.Max(4096, _lastCount * 5 / 4 / count), 1 << 24);
            var window = new LoadLoop.Window(duration, maxRequests);
            var runs = connections.Select((c, i) => c.RunOnThread(window, new Recorder(capacity), $"h2-load-{i}")).ToArray();
            var recorders = await Task.WhenAll(runs).WaitAsync(duration + LoadLoop.RequestTimeout + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            var m = window.Finish(recorders);
            _lastCount = m.Requests + m.Errors;
            return m;
        }
        finally
        {
            foreach (var c in connections)
            {
                c.Dispose();
            }
        }
    }
}
