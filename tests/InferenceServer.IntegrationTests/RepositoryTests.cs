using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.ModelBuilder;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>Repositories built per test: broken models beside good ones, version policies, devices, explicit load/unload.</summary>
public sealed class RepositoryTests
{
    private static void WriteIdentity(string repository, string name, int version = 1, TensorElementKind kind = TensorElementKind.Float) =>
        new OnnxGraphBuilder("identity")
            .Input("x", kind, "batch", 2)
            .Output("y", kind, "batch", 2)
            .Node("Identity", ["x"], ["y"])
            .Save(Path.Combine(repository, name, version.ToString(System.Globalization.CultureInfo.InvariantCulture), "model.onnx"));

    private static void WriteConfig(string repository, string name, string yaml)
    {
        Directory.CreateDirectory(Path.Combine(repository, name));
        File.WriteAllText(Path.Combine(repository, name, "config.yaml"), yaml);
    }

    private static readonly WireTensor TwoFloats = new("x", "FP32", [1, 2], [.. BitConverter.GetBytes(1.5f), .. BitConverter.GetBytes(-2f)]);

    [Fact]
    public async Task Broken_models_are_unavailable_with_their_reason_and_the_rest_serve()
    {
        var repo = Paths.NewTempDirectory("broken-repo");
        WriteIdentity(repo, "good");
        Directory.CreateDirectory(Path.Combine(repo, "corrupt", "1"));
        File.WriteAllText(Path.Combine(repo, "corrupt", "1", "model.onnx"), "this is not an ONNX model");
        Paths.LinkModel(repo, "old_opset", Path.Combine(Paths.SharedModels, "onnx", "conformance", "pytorch-converted", "test_Linear", "model.onnx"));
        WriteIdentity(repo, "gpu_only");
        WriteConfig(repo, "gpu_only", "device: cuda:0\n");
        WriteIdentity(repo, "gpu_fallback");
        WriteConfig(repo, "gpu_fallback", "device: cuda:0\nallow_cpu_fallback: true\n");
        WriteIdentity(repo, "bad_config");
        WriteConfig(repo, "bad_config", "max_batch_size: 4\ninput:\n  - name: nope\n    data_type: TYPE_FP32\n    dims: [2]\n");
        WriteIdentity(repo, "typo_config");
        WriteConfig(repo, "typo_config", "max_batch_sise: 4\n");
        Directory.CreateDirectory(Path.Combine(repo, "no_file", "1"));

        await using var server = await RunningServer.StartAsync(repo);
        var index = server.Repository.Index(false).ToDictionary(r => r.Name);
        Assert.Equal("READY", index["good"].State);
        Assert.Equal("READY", index["gpu_fallback"].State);
        Assert.Contains("Protobuf parsing failed", index["corrupt"].Reason);
        Assert.Contains("Gemm", index["old_opset"].Reason);
        Assert.Contains("CUDAExecutionProvider", index["gpu_only"].Reason);
        Assert.Contains("nope", index["bad_config"].Reason);
        Assert.Contains("max_batch_sise", index["typo_config"].Reason);
        Assert.Contains("model.onnx", index["no_file"].Reason);
        foreach (var broken in new[] { "corrupt", "old_opset", "gpu_only", "bad_config", "typo_config", "no_file" })
        {
            Assert.Equal("UNAVAILABLE", index[broken].State);
        }

        // Live, but strictly not ready; the good model serves; a broken one answers 503 / UNAVAILABLE with its reason.
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);
        Assert.False((await server.Grpc.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.True((await server.Grpc.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.Equal(TwoFloats.Data, Assert.Single(await InferClient.InferAsync(server, TensorEncoding.RestJson, "good", [TwoFloats])).Data);
        Assert.Equal(TwoFloats.Data, Assert.Single(await InferClient.InferAsync(server, TensorEncoding.GrpcRaw, "gpu_fallback", [TwoFloats])).Data);

        var (body, _) = InferClient.BuildRestBody([TwoFloats], binary: false);
        using var response = await server.Http.PostAsync("/v2/models/corrupt/infer", new ByteArrayContent(body));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("Protobuf parsing failed", await response.Content.ReadAsStringAsync());
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("gpu_only", "", [TwoFloats], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("CUDA", e.Status.Detail);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/v2/models/corrupt/ready")).StatusCode);
        Assert.False((await server.Grpc.ModelReadyAsync(new ModelReadyRequest { Name = "corrupt" })).Ready);

        // The provider in use is visible in the configuration.
        var config = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "gpu_fallback" })).Config;
        Assert.Equal("cuda:0", config.Parameters["device"].StringValue);
        Assert.Equal("CPUExecutionProvider", config.Parameters["execution_provider"].StringValue);
        Assert.Equal(ModelInstanceGroup.Types.Kind.Cpu, Assert.Single(config.InstanceGroup).Kind);

        // The index over REST carries the same states and reasons.
        using var indexResponse = await server.Http.PostAsync("/v2/repository/index", null);
        using var json = JsonDocument.Parse(await indexResponse.Content.ReadAsStringAsync());
        var rest = json.RootElement.EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal("UNAVAILABLE", rest["corrupt"].GetProperty("state").GetString());
        Assert.Contains("Protobuf", rest["corrupt"].GetProperty("reason").GetString());
        Assert.Equal("READY", rest["good"].GetProperty("state").GetString());
    }

    [Fact]
    public async Task Non_strict_readiness_is_ready_despite_broken_models()
    {
        var repo = Paths.NewTempDirectory("nonstrict-repo");
        WriteIdentity(repo, "good");
        Directory.CreateDirectory(Path.Combine(repo, "corrupt", "1"));
        File.WriteAllText(Path.Combine(repo, "corrupt", "1", "model.onnx"), "junk");
        await using var server = await RunningServer.StartAsync(repo, "--strict-readiness", "false");
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);
    }

    [Fact]
    public async Task Version_policies_choose_the_served_versions()
    {
        var repo = Paths.NewTempDirectory("versions-repo");
        foreach (var v in new[] { 1, 2, 3 })
        {
            WriteIdentity(repo, "latest", v);
            WriteIdentity(repo, "latest2", v);
            WriteIdentity(repo, "all", v);
            WriteIdentity(repo, "specific", v);
        }
        WriteConfig(repo, "latest2", "version_policy:\n  latest:\n    num_versions: 2\n");
        WriteConfig(repo, "all", "version_policy: {all: {}}\n");
        WriteConfig(repo, "specific", "version_policy:\n  specific:\n    versions: [1, 3]\n");
        await using var server = await RunningServer.StartAsync(repo);

        async Task<string[]> Versions(string model) => (await server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = model })).Versions.ToArray();
        Assert.Equal(["3"], await Versions("latest"));
        Assert.Equal(["2", "3"], await Versions("latest2"));
        Assert.Equal(["1", "2", "3"], await Versions("all"));
        Assert.Equal(["1", "3"], await Versions("specific"));

        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/models/specific/versions/3/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Http.GetAsync("/v2/models/specific/versions/2/ready")).StatusCode);
        var outputs = await InferClient.InferAsync(server, TensorEncoding.GrpcRaw, "specific", [TwoFloats], version: "1");
        Assert.Equal(TwoFloats.Data, Assert.Single(outputs).Data);
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("latest", "1", [TwoFloats], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);

        var config = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "specific" })).Config;
        Assert.Equal([1L, 3L], config.VersionPolicy.Specific.Versions);
    }

    [Fact]
    public async Task Explicit_model_control_loads_and_unloads()
    {
        var repo = Paths.NewTempDirectory("explicit-repo");
        WriteIdentity(repo, "first");
        WriteIdentity(repo, "second");
        Directory.CreateDirectory(Path.Combine(repo, "broken", "1"));
        File.WriteAllText(Path.Combine(repo, "broken", "1", "model.onnx"), "junk");
        await using var server = await RunningServer.StartAsync(repo, "--model-control-mode", "explicit", "--load-model", "first");

        var index = (await server.Grpc.RepositoryIndexAsync(new RepositoryIndexRequest())).Models.ToDictionary(m => m.Name);
        Assert.Equal("READY", index["first"].State);
        Assert.Equal("", index["second"].State);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);
        var notLoaded = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("second", "", [TwoFloats], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notLoaded.StatusCode);

        // Load over REST, infer, unload over gRPC, and the model is gone again.
        using (var load = await server.Http.PostAsync("/v2/repository/models/second/load", new StringContent("{\"parameters\": {}}")))
        {
            Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        }
        Assert.Equal(TwoFloats.Data, Assert.Single(await InferClient.InferAsync(server, TensorEncoding.RestBinary, "second", [TwoFloats])).Data);
        await server.Grpc.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = "second" });
        var unloaded = (await server.Grpc.RepositoryIndexAsync(new RepositoryIndexRequest())).Models.Single(m => m.Name == "second");
        Assert.Equal("UNAVAILABLE", unloaded.State);
        Assert.Equal("unloaded", unloaded.Reason);
        var gone = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("second", "", [TwoFloats], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);

        // Reload after unload; load of a model that fails; unknown and invalid names.
        await server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "second" });
        Assert.True((await server.Grpc.ModelReadyAsync(new ModelReadyRequest { Name = "second" })).Ready);
        using (var broken = await server.Http.PostAsync("/v2/repository/models/broken/load", null))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, broken.StatusCode);
            Assert.Contains("Protobuf", await broken.Content.ReadAsStringAsync());
        }
        using (var unknown = await server.Http.PostAsync("/v2/repository/models/nope/load", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }
        using (var traversal = await server.Http.PostAsync("/v2/repository/models/a..b/load", null))
        {
            Assert.Equal(HttpStatusCode.BadRequest, traversal.StatusCode);
        }
        var invalid = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "../explicit-repo/first" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        using (var badBody = await server.Http.PostAsync("/v2/repository/models/first/load", new StringContent("{not json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badBody.StatusCode);
        }
    }

    [Fact]
    public async Task A_failed_reload_leaves_the_serving_versions_in_place()
    {
        var repo = Paths.NewTempDirectory("failed-reload-repo");
        WriteIdentity(repo, "model");
        await using var server = await RunningServer.StartAsync(repo, "--model-control-mode", "explicit", "--load-model", "model");
        WriteConfig(repo, "model", "bogus_key: 1\n");
        using (var load = await server.Http.PostAsync("/v2/repository/models/model/load", null))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, load.StatusCode);
            var text = await load.Content.ReadAsStringAsync();
            Assert.Contains("bogus_key", text);
            Assert.Contains("keep serving", text);
        }
        Assert.Equal(TwoFloats.Data, Assert.Single(await InferClient.InferAsync(server, TensorEncoding.RestJson, "model", [TwoFloats])).Data);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/ready")).StatusCode);

        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest
        {
            ModelName = "model",
            Parameters = { ["config"] = new ModelRepositoryParameter { StringParam = "{}" } },
        }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("config", e.Status.Detail);
    }

    [Fact]
    public async Task Load_failures_name_the_file_inside_the_repository_not_the_server_path()
    {
        var repo = Paths.NewTempDirectory("path-repo");
        Directory.CreateDirectory(Path.Combine(repo, "corrupt", "1"));
        File.WriteAllText(Path.Combine(repo, "corrupt", "1", "model.onnx"), "junk");
        await using var server = await RunningServer.StartAsync(repo);
        var reason = Assert.Single(server.Repository.Index(false)).Reason;
        Assert.Contains("corrupt/1/model.onnx", reason);
        Assert.DoesNotContain(repo, reason);
    }

    [Fact]
    public async Task Each_port_keeps_to_its_protocol()
    {
        await using var server = await RunningServer.StartAsync(Paths.NewTempDirectory("empty-repo"));
        using var h2c = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var rest = await h2c.GetAsync($"http://127.0.0.1:{server.Endpoints.GrpcPort}/v2/health/ready");
        Assert.Equal(HttpStatusCode.NotFound, rest.StatusCode);
        Assert.True((await server.Grpc.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/v2/health/live")).StatusCode);
    }

    [Fact]
    public async Task Reloading_swaps_in_new_versions_without_failing_requests()
    {
        var repo = Paths.NewTempDirectory("reload-repo");
        WriteIdentity(repo, "model", 1);
        await using var server = await RunningServer.StartAsync(repo, "--model-control-mode", "explicit", "--load-model", "*");
        Assert.Equal(["1"], (await server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "model" })).Versions);

        using var cts = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            var count = 0;
            while (!cts.IsCancellationRequested)
            {
                Assert.Equal(TwoFloats.Data, Assert.Single(await InferClient.InferAsync(server, TensorEncoding.GrpcRaw, "model", [TwoFloats])).Data);
                count++;
            }
            return count;
        });
        WriteIdentity(repo, "model", 2);
        await server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "model" });
        Assert.Equal(["2"], (await server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "model" })).Versions);
        await server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "model" });
        cts.Cancel();
        Assert.True(await traffic > 0);
    }

    [Fact]
    public async Task Config_and_statistics_describe_the_model_and_its_traffic()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        WireTensor[] batch3 =
        [
            new("INPUT0", "INT32", [3, 16], new byte[3 * 64]),
            new("INPUT1", "INT32", [3, 16], new byte[3 * 64]),
        ];
        for (var i = 0; i < 4; i++)
        {
            await InferClient.InferAsync(server, (TensorEncoding)i, "simple", batch3);
        }
        await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "", [batch3[0]], raw: true)).ResponseAsync);

        var stats = Assert.Single((await server.Grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "simple" })).ModelStats);
        Assert.Equal("1", stats.Version);
        Assert.Equal(4UL, stats.InferenceStats.Success.Count);
        Assert.Equal(1UL, stats.InferenceStats.Fail.Count);
        Assert.Equal(12UL, stats.InferenceCount);
        Assert.Equal(4UL, stats.ExecutionCount);
        Assert.Equal(4UL, stats.InferenceStats.ComputeInfer.Count);
        Assert.True(stats.InferenceStats.ComputeInfer.Ns > 0);
        Assert.True(stats.InferenceStats.Success.Ns >= stats.InferenceStats.ComputeInfer.Ns);
        Assert.True(stats.LastInference > 0);
        var batchStats = Assert.Single(stats.BatchStats);
        Assert.Equal(3UL, batchStats.BatchSize);
        Assert.Equal(4UL, batchStats.ComputeInfer.Count);

        using (var rest = JsonDocument.Parse(await server.Http.GetStringAsync("/v2/models/simple/stats")))
        {
            var s = Assert.Single(rest.RootElement.GetProperty("model_stats").EnumerateArray().ToArray());
            Assert.Equal(JsonValueKind.Number, s.GetProperty("inference_count").ValueKind);
            Assert.Equal(12, s.GetProperty("inference_count").GetInt64());
            Assert.Equal(4, s.GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetInt64());
        }
        using (var all = JsonDocument.Parse(await server.Http.GetStringAsync("/v2/models/stats")))
        {
            Assert.Equal(5, all.RootElement.GetProperty("model_stats").GetArrayLength());
        }
        using (var versioned = JsonDocument.Parse(await server.Http.GetStringAsync("/v2/models/linear/versions/1/stats")))
        {
            Assert.Equal("1", Assert.Single(versioned.RootElement.GetProperty("model_stats").EnumerateArray().ToArray()).GetProperty("version").GetString());
        }

        var config = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "simple" })).Config;
        Assert.Equal(8, config.MaxBatchSize);
        Assert.Equal("onnxruntime_onnx", config.Platform);
        Assert.Equal(["INPUT0", "INPUT1"], config.Input.Select(i => i.Name));
        Assert.All(config.Input, i => Assert.Equal(Protocol.DataType.TypeInt32, i.DataType));
        Assert.All(config.Input, i => Assert.Equal([16L], i.Dims));
        using (var rest = JsonDocument.Parse(await server.Http.GetStringAsync("/v2/models/simple/config")))
        {
            Assert.Equal(8, rest.RootElement.GetProperty("max_batch_size").GetInt32());
            var input = rest.RootElement.GetProperty("input")[0];
            Assert.Equal("TYPE_INT32", input.GetProperty("data_type").GetString());
            Assert.Equal(16, input.GetProperty("dims")[0].GetInt64());
            // Where each value came from: simple's config.yaml declares its tensors and batching; the rest is derived or default.
            var provenance = rest.RootElement.GetProperty("provenance");
            Assert.Equal("config.yaml", provenance.GetProperty("max_batch_size").GetString());
            Assert.Equal("config.yaml", provenance.GetProperty("input.INPUT0").GetString());
            Assert.Equal("config.yaml", provenance.GetProperty("dynamic_batching").GetString());
            Assert.Equal("config.yaml", provenance.GetProperty("model_warmup").GetString());
            Assert.Equal("model", provenance.GetProperty("backend").GetString());
            Assert.Equal("default", provenance.GetProperty("version_policy").GetString());
        }
        using (var rest = JsonDocument.Parse(await server.Http.GetStringAsync("/v2/models/linear/config")))
        {
            // linear's config.yaml sets only its version policy: tensors and the batch dimension come from the model.
            var provenance = rest.RootElement.GetProperty("provenance");
            Assert.Equal("config.yaml", provenance.GetProperty("version_policy").GetString());
            Assert.Equal("model", provenance.GetProperty("max_batch_size").GetString());
            Assert.Equal("model", provenance.GetProperty("input.features").GetString());
            Assert.Equal("model", provenance.GetProperty("output.logits").GetString());
            Assert.Equal("model", provenance.GetProperty("dynamic_batching").GetString());
        }

        // Derived configuration: linear has no inputs in its config; the batch dimension is found in the model.
        var linear = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "linear" })).Config;
        Assert.Equal(8, linear.MaxBatchSize);
        Assert.Equal([4L], Assert.Single(linear.Input).Dims);
        var metadata = await server.Grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "linear" });
        Assert.Equal([-1L, 4L], Assert.Single(metadata.Inputs).Shape);
        Assert.Equal(["1", "2"], metadata.Versions);
        var stringModel = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "string_normalizer" })).Config;
        Assert.Equal(0, stringModel.MaxBatchSize);
        Assert.Equal(Protocol.DataType.TypeString, Assert.Single(stringModel.Input).DataType);

        using (var serverMetadata = JsonDocument.Parse(await server.Http.GetStringAsync("/v2")))
        {
            var extensions = serverMetadata.RootElement.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()).ToArray();
            Assert.Contains("binary_tensor_data", extensions);
            Assert.Contains("model_configuration", extensions);
            Assert.Contains("statistics", extensions);
            Assert.Contains("model_repository", extensions);
        }
    }

    [Fact]
    public async Task Stream_infer_answers_each_request_and_reports_errors_in_band()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        using var call = server.Grpc.ModelStreamInfer();
        var good = InferClient.BuildGrpcRequest("linear", "", [new WireTensor("features", "FP32", [1, 4], new byte[16])], raw: true);
        var bad = InferClient.BuildGrpcRequest("linear", "", [new WireTensor("features", "FP32", [1, 5], new byte[20])], raw: true);
        await call.RequestStream.WriteAsync(good);
        await call.RequestStream.WriteAsync(bad);
        await call.RequestStream.WriteAsync(good);
        await call.RequestStream.CompleteAsync();
        var replies = new List<ModelStreamInferResponse>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync())
        {
            replies.Add(reply);
        }
        Assert.Equal(3, replies.Count);
        Assert.Equal("", replies[0].ErrorMessage);
        Assert.Equal(2, replies[0].InferResponse.Outputs.Count);
        Assert.Contains("features", replies[1].ErrorMessage);
        Assert.Equal("", replies[2].ErrorMessage);
    }

    [Fact]
    public async Task Config_json_is_read_as_well_as_yaml()
    {
        var repo = Paths.NewTempDirectory("json-config-repo");
        WriteIdentity(repo, "m");
        File.WriteAllText(Path.Combine(repo, "m", "config.json"), "{\"max_batch_size\": 2, \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [2]}]}");
        await using var server = await RunningServer.StartAsync(repo);
        var config = (await server.Grpc.ModelConfigAsync(new ModelConfigRequest { Name = "m" })).Config;
        Assert.Equal(2, config.MaxBatchSize);
        var tooBig = new WireTensor("x", "FP32", [3, 2], new byte[24]);
        var e = await Assert.ThrowsAsync<RpcException>(() => server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("m", "", [tooBig], raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("max_batch_size", e.Status.Detail);
        _ = Encoding.UTF8;
    }
}
