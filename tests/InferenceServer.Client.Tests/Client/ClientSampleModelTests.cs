using System.Net;
using Grpc.Core;
using InferenceServer.Client;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Client;

/// <summary>The sample repository served with a middleware that records the headers every request arrives with.</summary>
public sealed class SampleServerWithHeaderCapture : IAsyncLifetime
{
    public HeaderCapture Headers { get; } = new();

    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RunningServer.StartAsync(Paths.SampleModels, Headers.Register);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The SDK against the sample models: typed inference, health, metadata, configuration, statistics, index, errors, headers.</summary>
public sealed class ClientSampleModelTests(SampleServerWithHeaderCapture fixture) : IClassFixture<SampleServerWithHeaderCapture>
{
    public static TheoryData<ClientProtocol> Protocols() => new(Enum.GetValues<ClientProtocol>());

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Simple_adds_and_subtracts_typed_int32_tensors(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);
        var a = Enumerable.Range(0, 16).ToArray();
        var b = Enumerable.Repeat(3, 16).ToArray();

        var result = await client.Client.InferAsync(new InferRequest("simple", Tensor.Create("INPUT0", a, 1, 16), Tensor.Create("INPUT1", b, 1, 16)));

        Assert.Equal("simple", result.ModelName);
        Assert.Equal("1", result.ModelVersion);
        Assert.Equal(a.Select(x => x + 3), result.Output("OUTPUT0").ToArray<int>());
        Assert.Equal(a.Select(x => x - 3), result.Output("OUTPUT1").AsSpan<int>().ToArray());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Requested_outputs_and_a_version_are_honoured(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var result = await client.Client.InferAsync(new InferRequest("linear", Tensor.Create("features", new[] { 5.1f, 3.5f, 1.4f, 0.2f }, 1, 4))
        {
            ModelVersion = "2",
            Outputs = ["probabilities"],
        });

        Assert.Equal("2", result.ModelVersion);
        var output = Assert.Single(result.Outputs);
        Assert.Equal("probabilities", output.Name);
        Assert.Equal(1f, output.ToArray<float>().Sum(), 3);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Strings_go_through_the_normalizer(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var result = await client.Client.InferAsync(new InferRequest("string_normalizer", Tensor.FromStrings("text", ["Hello", "WORLD", "ÄÖÜ"])));

        Assert.Equal(["hello", "world", "äöü"], result.Output("normalized").ToStrings());
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Health_metadata_config_statistics_and_index_are_typed(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);
        var c = client.Client;

        Assert.True(await c.ServerLiveAsync());
        Assert.True(await c.ServerReadyAsync());
        Assert.True(await c.ModelReadyAsync("linear", "1"));

        var server = await c.ServerMetadataAsync();
        Assert.Equal("inference-server", server.Name);
        Assert.Contains("binary_tensor_data", server.Extensions);

        var simple = await c.ModelMetadataAsync("simple");
        Assert.Equal(["1"], simple.Versions);
        Assert.Equal("onnxruntime_onnx", simple.Platform);
        Assert.Equal(("INPUT0", "INT32"), (simple.Inputs[0].Name, simple.Inputs[0].Datatype));
        Assert.Equal([-1L, 16L], simple.Inputs[0].Shape);
        Assert.Equal(["OUTPUT0", "OUTPUT1"], simple.Outputs.Select(o => o.Name));

        var config = await c.ModelConfigAsync("linear");
        Assert.Equal("linear", config.GetProperty("name").GetString());
        Assert.Equal("8", config.GetProperty("max_batch_size").GetRawText().Trim('"'));
        Assert.Equal("TYPE_FP32", config.GetProperty("input")[0].GetProperty("data_type").GetString());

        await c.InferAsync(new InferRequest("linear", Tensor.Create("features", new[] { 1f, 2f, 3f, 4f }, 1, 4)) { ModelVersion = "1" });
        var stats = await c.ModelStatisticsAsync("linear", "1");
        var model = stats.GetProperty("model_stats")[0];
        Assert.Equal("linear", model.GetProperty("name").GetString());
        Assert.True(long.Parse(model.GetProperty("inference_count").GetRawText().Trim('"')) >= 1);

        var index = await c.RepositoryIndexAsync();
        Assert.Contains(new RepositoryModel("simple", "1", "READY", ""), index);
        Assert.Contains(index, m => m.Name == "linear" && m.Version == "2" && m.State == "READY");
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task An_unknown_model_is_a_ModelNotFoundException(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var e = await Assert.ThrowsAsync<ModelNotFoundException>(() =>
            client.Client.InferAsync(new InferRequest("nosuch", Tensor.Create("x", new[] { 1f }))));
        var metadata = await Assert.ThrowsAsync<ModelNotFoundException>(() => client.Client.ModelMetadataAsync("nosuch"));

        Assert.Contains("nosuch", e.Message);
        Assert.Contains("nosuch", metadata.Message);
        AssertStatus(e, protocol, HttpStatusCode.NotFound, StatusCode.NotFound);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_bad_shape_is_an_InvalidInputException_with_the_servers_message_and_is_not_retried(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var e = await Assert.ThrowsAsync<InvalidInputException>(() => client.Client.InferAsync(new InferRequest("simple",
            Tensor.Create("INPUT0", new int[15], 1, 15), Tensor.Create("INPUT1", new int[16], 1, 16))));

        Assert.Equal("input 'INPUT0' has shape [1,15] but model 'simple' expects [-1,16]", e.Message);
        AssertStatus(e, protocol, HttpStatusCode.BadRequest, StatusCode.InvalidArgument);
        Assert.Single(client.Counter.Paths);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_wrong_datatype_is_an_InvalidInputException(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);

        var e = await Assert.ThrowsAsync<InvalidInputException>(() => client.Client.InferAsync(new InferRequest("simple",
            Tensor.Create("INPUT0", new float[16], 1, 16), Tensor.Create("INPUT1", new int[16], 1, 16))));

        Assert.Contains("INPUT0", e.Message);
        Assert.Contains("FP32", e.Message);
        AssertStatus(e, protocol, HttpStatusCode.BadRequest, StatusCode.InvalidArgument);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Model_calls_carry_the_mesh_headers_tenant_and_request_id(ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol, new InferenceClientOptions { Tenant = "team-a" });
        var requestId = "hdr-" + protocol;

        await client.Client.ModelMetadataAsync("linear", "2", new CallSettings { RequestId = requestId });
        await client.Client.InferAsync(new InferRequest("simple", Tensor.Create("INPUT0", new int[16], 1, 16), Tensor.Create("INPUT1", new int[16], 1, 16)),
            new CallSettings { RequestId = requestId + "-infer", Tenant = "team-b" });
        await client.Client.ServerLiveAsync(new CallSettings { RequestId = requestId + "-live" });

        var seen = fixture.Headers.Seen;
        var metadata = Assert.Single(seen, s => s.RequestId == requestId);
        Assert.Equal(("linear", "2", "team-a"), (metadata.ModelName, metadata.ModelVersion, metadata.Tenant));
        var infer = Assert.Single(seen, s => s.RequestId == requestId + "-infer");
        Assert.Equal(("simple", null, "team-b"), (infer.ModelName, infer.ModelVersion, infer.Tenant));
        Assert.EndsWith(protocol == ClientProtocol.Grpc ? "/ModelInfer" : "/v2/models/simple/infer", infer.Path);
        var live = Assert.Single(seen, s => s.RequestId == requestId + "-live");
        Assert.Null(live.ModelName);
    }

    [Fact]
    public void Typed_accessors_refuse_the_wrong_element_type_and_shapes_that_do_not_fit()
    {
        var tensor = Tensor.Create("x", new[] { 1, 2, 3, 4, 5, 6 }, 2, 3);

        var wrongType = Assert.Throws<InvalidOperationException>(() => tensor.ToArray<float>());
        var badShape = Assert.Throws<ArgumentException>(() => Tensor.Create("y", new[] { 1f, 2f }, 3));
        var notStrings = Assert.Throws<InvalidOperationException>(() => tensor.ToStrings());

        Assert.Equal("tensor 'x' holds INT32 elements, not FP32 (Single); read it as int", wrongType.Message);
        Assert.Contains("shape [3] holds 3 elements but 2 were given", badShape.Message);
        Assert.Contains("not BYTES", notStrings.Message);
        Assert.Equal([1, 2, 3, 4, 5, 6], tensor.ToArray<int>());
    }

    private static void AssertStatus(InferenceServerException e, ClientProtocol protocol, HttpStatusCode http, StatusCode grpc)
    {
        if (protocol == ClientProtocol.Grpc)
        {
            Assert.Equal(grpc, e.GrpcStatus);
            Assert.Null(e.HttpStatus);
        }
        else
        {
            Assert.Equal(http, e.HttpStatus);
            Assert.Null(e.GrpcStatus);
        }
    }
}
