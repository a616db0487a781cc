using System.Net;
using Grpc.Core;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>A server over the TorchScript modules of ../shared/models/torchscript, with their configurations declared here.</summary>
public sealed class TorchScriptFixture : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var repo = Paths.NewTempDirectory("torchscript");
        TorchScriptRepository.Add(repo, "linrelu", "linrelu.script.dat", """
            input: [{name: x, data_type: TYPE_FP32, dims: [10]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [6]}]
            """);
        TorchScriptRepository.Add(repo, "scripted", "scripted.script.dat", """
            input: [{name: x, data_type: TYPE_FP32, dims: [6]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [6]}]
            """);
        // The variable length lets a wrong size reach the module, which must refuse it as the client's error.
        TorchScriptRepository.Add(repo, "l1000", "l1000_100_10.script.dat", """
            max_batch_size: 0
            input: [{name: x, data_type: TYPE_FP32, dims: [-1]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [10]}]
            """);
        TorchScriptRepository.Add(repo, "l1000_batched", "l1000_100_10.script.dat", """
            max_batch_size: 8
            input: [{name: x, data_type: TYPE_FP32, dims: [1000]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [10]}]
            dynamic_batching: {}
            """);
        TorchScriptRepository.Add(repo, "func", "func.script.dat", """
            input:
              - {name: a, data_type: TYPE_FP32, dims: [10]}
              - {name: b, data_type: TYPE_FP32, dims: [10]}
            output: [{name: y, data_type: TYPE_FP32, dims: [10]}]
            """);
        // No inputs declared: a TorchScript file cannot describe them, so the model must not load.
        TorchScriptRepository.Add(repo, "undeclared", "linrelu.script.dat", "backend: pytorch\n");
        // libtorch is the CPU build in every flavor (the GPU image too): a model on cuda must say what to do instead.
        TorchScriptRepository.Add(repo, "on_cuda", "linrelu.script.dat", """
            device: cuda:0
            input: [{name: x, data_type: TYPE_FP32, dims: [10]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [6]}]
            """);
        TorchScriptRepository.Add(repo, "on_cuda_with_fallback", "linrelu.script.dat", """
            device: cuda:0
            allow_cpu_fallback: true
            input: [{name: x, data_type: TYPE_FP32, dims: [10]}]
            output: [{name: y, data_type: TYPE_FP32, dims: [6]}]
            """);
        Server = await RunningServer.StartAsync(repo);
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class TorchScriptTests(TorchScriptFixture fixture) : IClassFixture<TorchScriptFixture>
{
    private static readonly float[] LinReluExpected = [0.313458264f, 0, 0.9996568f, 0, 0, 0];
    private static readonly float[] ScriptedExpected = [1.554085f, 1.01024628f, -1.35086036f, -1.84021854f, 0.0127189457f, 0.5994258f];
    private static readonly float[] L1000Expected = [0.564213157f, -0.04519982f, -0.005117342f, 0.395530462f, -0.3780813f, -0.004734449f, -0.3221216f, -0.289159119f, 0.268511474f, 0.180702567f];

    private RunningServer Server => fixture.Server;

    public static TheoryData<TensorEncoding> Encodings => new() { TensorEncoding.RestJson, TensorEncoding.RestBinary, TensorEncoding.GrpcTyped, TensorEncoding.GrpcRaw };

    [Theory]
    [MemberData(nameof(Encodings))]
    public async Task Modules_give_their_expected_values(TensorEncoding encoding)
    {
        AssertClose(LinReluExpected, await InferOnes(encoding, "linrelu", [10]), 1e-5, 1e-6);
        AssertClose(ScriptedExpected, await InferOnes(encoding, "scripted", [6]), 1e-5, 1e-6);
        AssertClose(L1000Expected, await InferOnes(encoding, "l1000", [1000]), 1e-4, 1e-5);
        var outputs = await InferClient.InferAsync(Server, encoding, "func", [Ones("a", [10]), Ones("b", [10])]);
        Assert.Equal(Enumerable.Repeat(2f, 10), outputs.Single().AsFloats());
    }

    [Fact]
    public async Task Batched_module_gives_each_row_its_expected_values()
    {
        var outputs = await InferClient.InferAsync(Server, TensorEncoding.GrpcRaw, "l1000_batched", [Ones("x", [3, 1000])]);
        var y = outputs.Single();
        Assert.Equal([3L, 10L], y.Shape);
        var values = y.AsFloats();
        for (var row = 0; row < 3; row++)
        {
            AssertClose(L1000Expected, values.Skip(row * 10).Take(10).ToArray(), 1e-4, 1e-5);
        }
    }

    [Fact]
    public async Task Wrong_input_size_is_invalid_argument_on_grpc_and_400_on_rest()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => InferClient.InferAsync(Server, TensorEncoding.GrpcRaw, "l1000", [Ones("x", [100])]));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("1x100", error.Status.Detail);
        Assert.DoesNotContain("frame #", error.Status.Detail);

        var (body, _) = InferClient.BuildRestBody([Ones("x", [100])], binary: false);
        using var response = await Server.Http.PostAsync("/v2/models/l1000/infer", new ByteArrayContent(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("mat1 and mat2 shapes cannot be multiplied", text);
        Assert.DoesNotContain("Traceback", text);

        // The engine is still fine afterwards.
        AssertClose(L1000Expected, await InferOnes(TensorEncoding.GrpcRaw, "l1000", [1000]), 1e-4, 1e-5);
    }

    [Fact]
    public async Task Module_without_declared_inputs_does_not_load_and_says_why()
    {
        var index = Server.Repository.Index(readyOnly: false).Single(e => e.Name == "undeclared");
        Assert.Equal("UNAVAILABLE", index.State);
        Assert.Contains("declare every input and output", index.Reason);
        var error = await Assert.ThrowsAsync<RpcException>(() => InferClient.InferAsync(Server, TensorEncoding.GrpcRaw, "undeclared", [Ones("x", [10])]));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task A_module_on_cuda_is_unavailable_with_what_to_do_and_falls_back_when_allowed()
    {
        var index = Server.Repository.Index(readyOnly: false).Single(e => e.Name == "on_cuda");
        Assert.Equal("UNAVAILABLE", index.State);
        Assert.Contains("libtorch's CPU build", index.Reason);
        Assert.Contains("device: cpu", index.Reason);
        Assert.Contains("docs/docker.md", index.Reason);

        AssertClose(LinReluExpected, await InferOnes(TensorEncoding.GrpcRaw, "on_cuda_with_fallback", [10]), 1e-5, 1e-6);
    }

    [Fact]
    public async Task Configuration_reports_the_pytorch_platform()
    {
        var config = await Server.Grpc.ModelConfigAsync(new InferenceServer.Protocol.ModelConfigRequest { Name = "func" });
        Assert.Equal("pytorch_libtorch", config.Config.Platform);
        Assert.Equal(["a", "b"], config.Config.Input.Select(i => i.Name));
    }

    private Task<float[]> InferOnes(TensorEncoding encoding, string model, long[] shape) =>
        InferClient.InferAsync(Server, encoding, model, [Ones("x", shape)]).ContinueWith(t => t.Result.Single().AsFloats(), TaskScheduler.Default);

    private static WireTensor Ones(string name, long[] shape) =>
        WireTensor.FromFloats(name, shape, Enumerable.Repeat(1f, (int)shape.Aggregate(1L, (a, b) => a * b)).ToArray());

    private static void AssertClose(float[] expected, float[] actual, double rtol, double atol)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= atol + (rtol * Math.Abs(expected[i])), $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
