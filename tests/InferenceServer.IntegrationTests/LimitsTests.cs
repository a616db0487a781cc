using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using InferenceServer.Backends;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>The request limits (section "Limits"): each is configurable and each refusal is a client error naming the input and the limit.</summary>
public sealed class LimitsTests
{
    private static WireTensor Int32s(string name, long[] shape, int count) =>
        new(name, "INT32", shape, Enumerable.Range(0, count).SelectMany(BitConverter.GetBytes).ToArray());

    private static async Task<(HttpStatusCode Status, string Text)> PostAsync(RunningServer server, string path, string body)
    {
        using var response = await server.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_huge_declared_shape_is_refused_before_its_data_is_read()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        // 2^44 elements declared, a handful sent: refused on the shape, naming the input and the limit.
        var (status, text) = await PostAsync(server, "/v2/models/simple/infer",
            """{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1099511627776,16],"data":[1,2,3]},{"name":"INPUT1","datatype":"INT32","shape":[1,16],"data":[1]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("INPUT0", text);
        Assert.Contains("Limits:MaxTensorElements", text);

        // A product that overflows 64 bits.
        (status, text) = await PostAsync(server, "/v2/models/simple/infer",
            """{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[4294967296,4294967296,16],"data":[1]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("INPUT0", text);

        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(
            InferClient.BuildGrpcRequest("simple", "", [Int32s("INPUT0", [1L << 40, 16], 16), Int32s("INPUT1", [1, 16], 16)], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("INPUT0", e.Status.Detail);
        Assert.Contains("Limits:MaxTensorElements", e.Status.Detail);
    }

    [Fact]
    public async Task Element_and_byte_limits_are_configurable()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, new Dictionary<string, string?>
        {
            ["Limits:MaxTensorElements"] = "16",
            ["Limits:MaxRequestTensorBytes"] = "100",
        });
        // Two [1,16] INT32 inputs are 128 bytes: the second one crosses the 100-byte request limit.
        foreach (var encoding in Enum.GetValues<TensorEncoding>())
        {
            var problem = await Assert.ThrowsAnyAsync<Exception>(() => InferClient.InferAsync(server, encoding, "simple", [Int32s("INPUT0", [1, 16], 16), Int32s("INPUT1", [1, 16], 16)]));
            Assert.Contains("INPUT1", problem.Message);
            Assert.Contains("Limits:MaxRequestTensorBytes", problem.Message);
            Assert.True(problem is RpcException { StatusCode: StatusCode.InvalidArgument } || problem.Message.Contains("400"), $"{encoding}: {problem.Message}");
        }
        // [2,16] is 32 elements, over the 16-element limit.
        var (status, text) = await PostAsync(server, "/v2/models/simple/infer",
            """{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[2,16],"data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Limits:MaxTensorElements", text);
    }

    [Fact]
    public async Task Json_nested_deeper_than_the_limit_is_a_400_that_says_so()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, new Dictionary<string, string?> { ["Limits:MaxJsonDepth"] = "8" });
        var deep = new string('[', 9) + "1" + new string(']', 9);
        var (status, text) = await PostAsync(server, "/v2/models/simple/infer", $$"""{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":{{deep}}}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("deeper than 8", text);
        (status, text) = await PostAsync(server, "/v1/models/simple:predict", $$"""{"instances":{{deep}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("deeper than 8", text);
        // The generation routes hold to the same limit.
        (status, text) = await PostAsync(server, "/v2/models/bigram_lm/generate", "{\"text_input\":\"a\",\"parameters\":{\"x\":" + deep + "}}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("deeper than 8", text);
        (status, text) = await PostAsync(server, "/v1/completions", $$"""{"model":"bigram_lm","prompt":"a","metadata":{{deep}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("deeper than 8", text);

        // Within the limit, nested data still decodes.
        var rows = "[[" + string.Join(",", Enumerable.Range(0, 16)) + "]]";
        (status, text) = await PostAsync(server, "/v2/models/simple/infer",
            $$"""{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":{{rows}}},{"name":"INPUT1","datatype":"INT32","shape":[1,16],"data":{{rows}}}]}""");
        Assert.True(status == HttpStatusCode.OK, text);
    }

    [Fact]
    public async Task A_declared_body_over_the_limit_is_refused_with_413_before_it_is_sent()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, "--max-request-bytes", "4096");
        // Headers only: the server must answer from the declared length, without waiting for (or buffering) a gigabyte.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.Endpoints.HttpPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v2/models/simple/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("HTTP/1.1 413", statusLine);
    }

    [Fact]
    public async Task Deadlines_beyond_what_a_timer_can_wait_are_served()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        WireTensor[] inputs = [Int32s("INPUT0", [1, 16], 16), Int32s("INPUT1", [1, 16], 16)];
        // A gRPC deadline 60 days out, and a timeout parameter of 60 days in microseconds (past a .NET timer's 49.7 days).
        var reply = await server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "", inputs, raw: true), deadline: DateTime.UtcNow.AddDays(60));
        Assert.Equal(2, reply.Outputs.Count);
        var body = InferClient.BuildRestBody(inputs, binary: false).Body;
        var json = Encoding.UTF8.GetString(body).Replace("{\"inputs\"", "{\"parameters\":{\"timeout\":5184000000000},\"inputs\"", StringComparison.Ordinal);
        var (status, text) = await PostAsync(server, "/v2/models/simple/infer", json);
        Assert.True(status == HttpStatusCode.OK, text);
        (status, text) = await PostAsync(server, "/v2/models/simple/infer", json.Replace("5184000000000", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        Assert.True(status == HttpStatusCode.OK, text);
    }

    [Fact]
    public async Task The_default_timeout_answers_a_request_queued_too_long_with_504()
    {
        var repo = Paths.NewTempDirectory("limits-repo");
        GateBackend.WriteModel(repo, "gate_timeout", "max_batch_size: 0\n");
        await using var server = await RunningServer.StartAsync(repo, services => services.AddSingleton<IModelBackend, GateBackend>(), "--default-timeout", "0.2");
        var state = GateBackend.States["gate_timeout"];
        state.Open.Reset();
        const string body = """{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}""";
        var running = PostAsync(server, "/v2/models/gate_timeout/infer", body);
        await state.WaitForExecutionsAsync(1);
        // The instance is busy: this one waits in the queue with no deadline of its own, so the server's applies.
        var (status, text) = await PostAsync(server, "/v2/models/gate_timeout/infer", body);
        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Contains("deadline", text);
        state.Open.Set();
        Assert.Equal(HttpStatusCode.OK, (await running).Status);
        Assert.Single(state.Executions);
    }

    [Fact]
    public async Task Invalid_limits_stop_the_server_from_starting()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => RunningServer.StartAsync(Paths.SampleModels, "--default-timeout", "-1"));
        Assert.Contains("DefaultTimeoutSeconds", e.Message);
    }
}
