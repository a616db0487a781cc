using System.Net;
using System.Text;
using System.Text.Json;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>The repository a fresh clone serves: it is what the generator writes, and every sample model answers correctly.</summary>
public sealed class SampleModelTests(SampleServerFixture fixture) : IClassFixture<SampleServerFixture>
{
    private RunningServer Server => fixture.Server;

    [Fact]
    public void Committed_sample_models_are_what_the_generator_writes()
    {
        var fresh = Paths.NewTempDirectory("samples");
        var written = SampleModels.WriteAll(fresh);
        Assert.NotEmpty(written);
        foreach (var path in written)
        {
            var relative = Path.GetRelativePath(fresh, path);
            var committed = Path.Combine(Paths.SampleModels, relative);
            Assert.True(File.Exists(committed), $"models/{relative} is missing; run the generator");
            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(File.ReadAllBytes(committed)), $"models/{relative} differs from the generator's output");
        }
    }

    [Fact]
    public async Task Every_sample_model_is_ready()
    {
        Assert.True(Server.Repository.IsServerReady, string.Join("\n", Server.Repository.Index(false).Select(r => $"{r.Name}/{r.Version}: {r.State} {r.Reason}")));
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.GetAsync("/v2/health/ready")).StatusCode);
        var index = Server.Repository.Index(false).Select(r => $"{r.Name}/{r.Version}/{r.State}").ToArray();
        Assert.Equal(["bigram_lm/1/READY", "linear/1/READY", "linear/2/READY", "simple/1/READY", "string_normalizer/1/READY"], index);
    }

    [Fact]
    public async Task Bigram_lm_generates_the_greedy_chain_of_its_table()
    {
        var generator = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Generation.ITextGenerator>(Server.Services);
        var stream = await generator.GenerateAsync(SampleModels.BigramName, null, new Generation.GenerationRequest { Prompt = "The s", MaxTokens = 30 }, CancellationToken.None);
        var (text, usage, finish) = await ShakespeareGenerationTests.CollectAsync(stream);

        // The reference: follow the table's largest entry from the prompt's last character.
        Assert.Equal(SampleModels.BigramGreedy('s', 30), text);
        Assert.Equal(new Generation.GenerationUsage(5, 30), usage);
        Assert.Equal(Generation.FinishReason.Length, finish);
    }

    [Theory]
    [InlineData(TensorEncoding.GrpcRaw)]
    [InlineData(TensorEncoding.GrpcTyped)]
    [InlineData(TensorEncoding.RestJson)]
    [InlineData(TensorEncoding.RestBinary)]
    public async Task Simple_adds_and_subtracts_a_batch(TensorEncoding encoding)
    {
        var a = Enumerable.Range(0, 32).ToArray();
        var b = Enumerable.Range(0, 32).Select(i => 100 - 3 * i).ToArray();
        WireTensor[] inputs =
        [
            new("INPUT0", "INT32", [2, 16], a.SelectMany(BitConverter.GetBytes).ToArray()),
            new("INPUT1", "INT32", [2, 16], b.SelectMany(BitConverter.GetBytes).ToArray()),
        ];
        var outputs = await InferClient.InferAsync(Server, encoding, "simple", inputs);
        Assert.Equal(["OUTPUT0", "OUTPUT1"], outputs.Select(o => o.Name));
        Assert.Equal(a.Zip(b, (x, y) => (double)(x + y)), outputs[0].ToDoubles());
        Assert.Equal(a.Zip(b, (x, y) => (double)(x - y)), outputs[1].ToDoubles());
        Assert.All(outputs, o => Assert.Equal([2L, 16L], o.Shape));
    }

    [Fact]
    public async Task Requested_outputs_subset_is_honoured()
    {
        WireTensor[] inputs =
        [
            new("INPUT0", "INT32", [1, 16], new byte[64]),
            new("INPUT1", "INT32", [1, 16], Enumerable.Repeat(1, 16).SelectMany(BitConverter.GetBytes).ToArray()),
        ];
        foreach (var encoding in Enum.GetValues<TensorEncoding>())
        {
            var outputs = await InferClient.InferAsync(Server, encoding, "simple", inputs, outputs: ["OUTPUT1"]);
            var only = Assert.Single(outputs);
            Assert.Equal("OUTPUT1", only.Name);
            Assert.All(only.ToDoubles(), v => Assert.Equal(-1, v));
        }
    }

    [Theory]
    [InlineData("1")]
    [InlineData("2")]
    [InlineData("")]
    public async Task Linear_versions_route_to_their_own_weights(string version)
    {
        float[] features = [5.1f, 3.5f, 1.4f, 0.2f, 6.0f, 2.9f, 4.5f, 1.5f];
        var input = new WireTensor("features", "FP32", [2, 4], features.SelectMany(BitConverter.GetBytes).ToArray());
        var expectedVersion = version == "" ? 2 : int.Parse(version, System.Globalization.CultureInfo.InvariantCulture);
        foreach (var encoding in Enum.GetValues<TensorEncoding>())
        {
            var outputs = await InferClient.InferAsync(Server, encoding, "linear", [input], version);
            var logits = outputs.Single(o => o.Name == "logits").ToDoubles();
            var probabilities = outputs.Single(o => o.Name == "probabilities").ToDoubles();
            for (var row = 0; row < 2; row++)
            {
                var (expectedLogits, expectedProbabilities) = SampleModels.ComputeLinear(expectedVersion, features.AsSpan(row * 4, 4));
                for (var c = 0; c < 3; c++)
                {
                    Assert.Equal(expectedLogits[c], logits[row * 3 + c], 4);
                    Assert.Equal(expectedProbabilities[c], probabilities[row * 3 + c], 4);
                }
            }
        }
    }

    [Fact]
    public async Task Nested_json_data_and_request_parameters_are_accepted()
    {
        var rows = string.Join(",", Enumerable.Range(0, 2).Select(r => "[" + string.Join(",", Enumerable.Range(0, 16).Select(i => r * 16 + i)) + "]"));
        var body = "{\"id\": \"nested\", \"parameters\": {\"priority\": 1, \"tag\": \"x\", \"flag\": true, \"ratio\": 0.5}, \"inputs\": [" +
            "{\"name\": \"INPUT0\", \"datatype\": \"INT32\", \"shape\": [2, 16], \"data\": [" + rows + "], \"parameters\": {}}," +
            "{\"name\": \"INPUT1\", \"datatype\": \"INT32\", \"shape\": [2, 16], \"data\": [" + rows + "]}]}";
        using var response = await Server.Http.PostAsync("/v2/models/simple/infer", new StringContent(body));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, Encoding.UTF8.GetString(bytes));
        var outputs = InferClient.ParseRestResponse(response, bytes, "nested");
        Assert.Equal(Enumerable.Range(0, 32).Select(i => 2.0 * i), outputs.Single(o => o.Name == "OUTPUT0").ToDoubles());

        var grpc = InferClient.BuildGrpcRequest("simple", "", [new("INPUT0", "INT32", [1, 16], new byte[64]), new("INPUT1", "INT32", [1, 16], new byte[64])], raw: true);
        grpc.Parameters["priority"] = new Protocol.InferParameter { Int64Param = 1 };
        grpc.Parameters["ratio"] = new Protocol.InferParameter { DoubleParam = 0.5 };
        grpc.Inputs[0].Parameters["note"] = new Protocol.InferParameter { StringParam = "x" };
        var reply = await Server.Grpc.ModelInferAsync(grpc);
        Assert.Equal("req-simple", reply.Id);
        Assert.Equal(2, reply.Outputs.Count);
    }

    [Fact]
    public async Task Response_names_the_version_that_served_it()
    {
        var body = "{\"inputs\":[{\"name\":\"features\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}";
        using var response = await Server.Http.PostAsync("/v2/models/linear/versions/1/infer", new StringContent(body));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("linear", json.RootElement.GetProperty("model_name").GetString());
        Assert.Equal("1", json.RootElement.GetProperty("model_version").GetString());
        using var latest = await Server.Http.PostAsync("/v2/models/linear/infer", new StringContent(body));
        using var latestJson = JsonDocument.Parse(await latest.Content.ReadAsStringAsync());
        Assert.Equal("2", latestJson.RootElement.GetProperty("model_version").GetString());
    }

    [Theory]
    [InlineData(TensorEncoding.GrpcRaw)]
    [InlineData(TensorEncoding.GrpcTyped)]
    [InlineData(TensorEncoding.RestJson)]
    [InlineData(TensorEncoding.RestBinary)]
    public async Task String_normalizer_lower_cases_text(TensorEncoding encoding)
    {
        var input = new WireTensor("text", "BYTES", [3], WireTensor.EncodeStrings("Hello World", "ÜNÏCÖDÉ", "already lower"));
        var output = Assert.Single(await InferClient.InferAsync(Server, encoding, "string_normalizer", [input]));
        Assert.Equal(["hello world", "ünïcödé", "already lower"], output.BytesElements().Select(Encoding.UTF8.GetString));
    }

    [Fact]
    public async Task Kserve_v1_predict_answers_predictions()
    {
        using var single = await Server.Http.PostAsync("/v1/models/string_normalizer:predict", new StringContent("{\"instances\": [\"ABC\", \"Def\"]}"));
        Assert.Equal(HttpStatusCode.OK, single.StatusCode);
        using (var json = JsonDocument.Parse(await single.Content.ReadAsStringAsync()))
        {
            Assert.Equal(["abc", "def"], json.RootElement.GetProperty("predictions").EnumerateArray().Select(e => e.GetString()));
        }

        using var multi = await Server.Http.PostAsync("/v1/models/linear:predict", new StringContent("{\"instances\": [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]]}"));
        Assert.Equal(HttpStatusCode.OK, multi.StatusCode);
        using (var json = JsonDocument.Parse(await multi.Content.ReadAsStringAsync()))
        {
            var predictions = json.RootElement.GetProperty("predictions").EnumerateArray().ToArray();
            Assert.Equal(2, predictions.Length);
            var (logits, probabilities) = SampleModels.ComputeLinear(2, [6.0f, 2.9f, 4.5f, 1.5f]);
            Assert.Equal(logits, predictions[1].GetProperty("logits").EnumerateArray().Select(e => e.GetSingle()).ToArray(), (x, y) => Math.Abs(x - y) < 1e-4);
            Assert.Equal(probabilities, predictions[1].GetProperty("probabilities").EnumerateArray().Select(e => e.GetSingle()).ToArray(), (x, y) => Math.Abs(x - y) < 1e-4);
        }

        using var keyed = await Server.Http.PostAsync("/v1/models/simple:predict", new StringContent(
            "{\"instances\": [{\"INPUT0\": [" + string.Join(",", Enumerable.Range(0, 16)) + "], \"INPUT1\": [" + string.Join(",", Enumerable.Repeat(1, 16)) + "]}]}"));
        Assert.Equal(HttpStatusCode.OK, keyed.StatusCode);
        using (var json = JsonDocument.Parse(await keyed.Content.ReadAsStringAsync()))
        {
            var prediction = Assert.Single(json.RootElement.GetProperty("predictions").EnumerateArray().ToArray());
            Assert.Equal(Enumerable.Range(1, 16), prediction.GetProperty("OUTPUT0").EnumerateArray().Select(e => e.GetInt32()));
        }
    }

    [Theory]
    [InlineData("{\"instances\": []}", HttpStatusCode.BadRequest)]
    [InlineData("{\"inputs\": [1]}", HttpStatusCode.BadRequest)]
    [InlineData("{\"instances\": [[1,2,3,4],[1,2]]}", HttpStatusCode.BadRequest)]
    [InlineData("{\"instances\": [[1,2,3]]}", HttpStatusCode.BadRequest)]
    [InlineData("not json", HttpStatusCode.BadRequest)]
    public async Task Kserve_v1_mistakes_are_client_errors(string body, HttpStatusCode expected)
    {
        using var response = await Server.Http.PostAsync("/v1/models/linear:predict", new StringContent(body));
        Assert.Equal(expected, response.StatusCode);
        Assert.Contains("error", await response.Content.ReadAsStringAsync());
        using var unknown = await Server.Http.PostAsync("/v1/models/nope:predict", new StringContent("{\"instances\": [1]}"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Admin_port_serves_health_but_not_the_inference_api()
    {
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Server.Endpoints.MetricsPort}") };
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/v2/models/simple")).StatusCode);
    }
}
