using System.Net;
using System.Text;
using Grpc.Core;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>The sample repository served with small request limits, for the error contract.</summary>
public sealed class SampleServerFixture : IAsyncLifetime
{
    public const int MaxRequestBytes = 64 * 1024;

    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Server = await RunningServer.StartAsync(Paths.SampleModels,
            "--max-request-bytes", MaxRequestBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--grpc-max-message-bytes", MaxRequestBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Every client mistake gets a clear 4xx / gRPC status naming what is wrong; never a 500 and never a stack trace.</summary>
public sealed class ErrorTests(SampleServerFixture fixture) : IClassFixture<SampleServerFixture>
{
    private RunningServer Server => fixture.Server;

    private static WireTensor Int32s(string name, long[] shape, int count) =>
        new(name, "INT32", shape, Enumerable.Range(0, count).SelectMany(i => BitConverter.GetBytes(i)).ToArray());

    private static readonly WireTensor[] GoodInputs = [Int32s("INPUT0", [1, 16], 16), Int32s("INPUT1", [1, 16], 16)];

    private sealed record Mistake(WireTensor[] Inputs, string Model, StatusCode Grpc, HttpStatusCode Http, string Named);

    private static readonly Dictionary<string, Mistake> Mistakes = new()
    {
        ["unknown model"] = new(GoodInputs, "no_such_model", StatusCode.NotFound, HttpStatusCode.NotFound, "no_such_model"),
        ["wrong datatype"] = new([new WireTensor("INPUT0", "FP32", [1, 16], new byte[64]), GoodInputs[1]], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "INPUT0"),
        ["wrong shape"] = new([Int32s("INPUT0", [1, 15], 15), GoodInputs[1]], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "INPUT0"),
        ["batch over max_batch_size"] = new([Int32s("INPUT0", [9, 16], 144), Int32s("INPUT1", [9, 16], 144)], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "max_batch_size"),
        ["unknown input name"] = new([GoodInputs[0], Int32s("INPUT7", [1, 16], 16)], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "INPUT7"),
        ["missing input"] = new([GoodInputs[0]], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "INPUT1"),
        ["element count"] = new([Int32s("INPUT0", [1, 16], 15), GoodInputs[1]], "simple", StatusCode.InvalidArgument, HttpStatusCode.BadRequest, "INPUT0"),
    };

    public static TheoryData<TensorEncoding, string> MistakeCases()
    {
        var data = new TheoryData<TensorEncoding, string>();
        foreach (var encoding in Enum.GetValues<TensorEncoding>())
        {
            foreach (var what in Mistakes.Keys)
            {
                data.Add(encoding, what);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MistakeCases))]
    public async Task Client_mistake_gets_its_status_and_names_the_culprit(TensorEncoding encoding, string what)
    {
        var mistake = Mistakes[what];
        if (encoding is TensorEncoding.GrpcRaw or TensorEncoding.GrpcTyped)
        {
            var request = InferClient.BuildGrpcRequest(mistake.Model, "", mistake.Inputs, raw: encoding == TensorEncoding.GrpcRaw);
            var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(request).ResponseAsync);
            Assert.True(mistake.Grpc == e.StatusCode, $"{what}: {e.StatusCode} {e.Status.Detail}");
            Assert.Contains(mistake.Named, e.Status.Detail);
        }
        else
        {
            var (body, header) = InferClient.BuildRestBody(mistake.Inputs, binary: encoding == TensorEncoding.RestBinary);
            var (status, error) = await PostAsync($"/v2/models/{mistake.Model}/infer", body, header);
            Assert.True(mistake.Http == status, $"{what}: {status} {error}");
            Assert.Contains(mistake.Named, error);
        }
    }

    [Fact]
    public async Task Unknown_version_is_not_found_over_both_protocols()
    {
        var (body, _) = InferClient.BuildRestBody(GoodInputs, binary: false);
        var (status, error) = await PostAsync("/v2/models/simple/versions/7/infer", body, null);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("7", error);
        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "7", GoodInputs, raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Server.Http.GetAsync("/v2/models/simple/versions/7")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Server.Http.GetAsync("/v2/models/nope/ready")).StatusCode);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "nope" }).ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task Raw_byte_size_mismatch_is_invalid_argument()
    {
        WireTensor[] inputs = [new WireTensor("INPUT0", "INT32", [1, 16], new byte[63]), GoodInputs[1]];
        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "", inputs, raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("INPUT0", e.Status.Detail);
        var (body, header) = InferClient.BuildRestBody(inputs, binary: true);
        var (status, error) = await PostAsync("/v2/models/simple/infer", body, header);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("INPUT0", error);
    }

    [Fact]
    public async Task Raw_contents_count_must_match_inputs()
    {
        var request = InferClient.BuildGrpcRequest("simple", "", GoodInputs, raw: true);
        request.RawInputContents.RemoveAt(1);
        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("raw_input_contents", e.Status.Detail);
    }

    [Fact]
    public async Task Typed_contents_in_the_wrong_field_are_invalid_argument()
    {
        var request = InferClient.BuildGrpcRequest("simple", "", GoodInputs, raw: false);
        request.Inputs[0].Contents = new InferTensorContents { Fp32Contents = { Enumerable.Repeat(1f, 16) } };
        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("int_contents", e.Status.Detail);
    }

    [Theory]
    [InlineData("{\"inputs\": [", "malformed JSON")]
    [InlineData("[1,2,3]", "JSON object")]
    [InlineData("{\"outputs\": []}", "inputs")]
    [InlineData("{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"INT32\", \"shape\": [1,16], \"data\": [1,2,\"x\",4,5,6,7,8,9,10,11,12,13,14,15,16]}]}", "INPUT0")]
    [InlineData("{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"NOPE\", \"shape\": [1,16], \"data\": []}]}", "datatype")]
    [InlineData("{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"INT32\", \"shape\": [1,-16], \"data\": []}]}", "shape")]
    [InlineData("{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"INT32\", \"shape\": [1,16]}]}", "INPUT0")]
    [InlineData("{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"INT8\", \"shape\": [1], \"data\": [300]}]}", "INPUT0")]
    [InlineData("", "empty")]
    public async Task Malformed_rest_bodies_are_bad_requests(string json, string mentions)
    {
        var (status, error) = await PostAsync("/v2/models/simple/infer", Encoding.UTF8.GetBytes(json), null);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(mentions, error, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("999999")]
    public async Task Bad_binary_header_is_a_bad_request(string header)
    {
        var (body, _) = InferClient.BuildRestBody(GoodInputs, binary: true);
        using var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", header);
        using var response = await Server.Http.PostAsync("/v2/models/simple/infer", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Inference-Header-Content-Length", text);
    }

    [Fact]
    public async Task Binary_data_size_past_the_body_is_a_bad_request()
    {
        var (body, header) = InferClient.BuildRestBody(GoodInputs, binary: true);
        var (status, error) = await PostAsync("/v2/models/simple/infer", body.AsSpan(0, body.Length - 10).ToArray(), header);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("INPUT1", error);
    }

    [Fact]
    public async Task Oversized_bodies_are_refused_with_413_and_resource_exhausted()
    {
        var big = new WireTensor("INPUT0", "INT32", [1, 16], new byte[SampleServerFixture.MaxRequestBytes * 2]);
        var (body, header) = InferClient.BuildRestBody([big, GoodInputs[1]], binary: true);
        var (status, error) = await PostAsync("/v2/models/simple/infer", body, header);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("limit", error);

        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "", [big, GoodInputs[1]], raw: true)).ResponseAsync);
        Assert.True(StatusCode.ResourceExhausted == e.StatusCode, $"{e.StatusCode}: {e.Status.Detail} {e.Status.DebugException}");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("text/plain")]
    [InlineData("application/json")]
    public async Task Json_bodies_are_served_whatever_the_content_type(string? contentType)
    {
        var (body, _) = InferClient.BuildRestBody(GoodInputs, binary: false);
        using var content = new ByteArrayContent(body);
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }
        using var response = await Server.Http.PostAsync("/v2/models/simple/infer", content);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, Encoding.UTF8.GetString(bytes));
        var outputs = InferClient.ParseRestResponse(response, bytes);
        Assert.Equal(Enumerable.Range(0, 16).Select(i => 2 * i), outputs.Single(o => o.Name == "OUTPUT0").ToDoubles().Select(d => (int)d));
    }

    [Fact]
    public async Task Binary_bodies_are_served_with_a_form_content_type()
    {
        var (body, header) = InferClient.BuildRestBody(GoodInputs, binary: true);
        using var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded");
        content.Headers.Add("Inference-Header-Content-Length", header!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await Server.Http.PostAsync("/v2/models/simple/infer", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("Inference-Header-Content-Length"));
    }

    [Fact]
    public async Task Load_and_unload_are_refused_without_explicit_model_control()
    {
        var (status, error) = await PostAsync("/v2/repository/models/simple/unload", [], null);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("explicit", error);
        var e = await Assert.ThrowsAsync<RpcException>(() => Server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "simple" }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
    }

    private async Task<(HttpStatusCode Status, string Error)> PostAsync(string path, byte[] body, int? headerLength)
    {
        using var content = new ByteArrayContent(body);
        if (headerLength is int h)
        {
            content.Headers.Add("Inference-Header-Content-Length", h.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        using var response = await Server.Http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("\n   at ", text);
        Assert.DoesNotContain(".cs:line", text);
        Assert.DoesNotContain("Exception", text);
        if (!response.IsSuccessStatusCode)
        {
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            using var document = System.Text.Json.JsonDocument.Parse(text);
            return (response.StatusCode, document.RootElement.GetProperty("error").GetString()!);
        }
        return (response.StatusCode, text);
    }
}
