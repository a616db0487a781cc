using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>SqueezeNet and ResNet-50 (real graphs, constant weights) from ../shared/models/onnx/light.</summary>
public sealed class LightModelsFixture : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var repository = Paths.NewTempDirectory("light-repo");
        foreach (var model in new[] { "light_squeezenet", "light_resnet50" })
        {
            Paths.LinkModel(repository, model, Path.Combine(Paths.SharedModels, "onnx", "light", model + ".onnx"));
        }
        Server = await RunningServer.StartAsync(repository);
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class LightModelTests(LightModelsFixture fixture) : IClassFixture<LightModelsFixture>
{
    [Theory]
    [InlineData("light_squeezenet", "data_0", TensorEncoding.GrpcRaw)]
    [InlineData("light_squeezenet", "data_0", TensorEncoding.GrpcTyped)]
    [InlineData("light_squeezenet", "data_0", TensorEncoding.RestJson)]
    [InlineData("light_squeezenet", "data_0", TensorEncoding.RestBinary)]
    [InlineData("light_resnet50", "gpu_0/data_0", TensorEncoding.GrpcRaw)]
    [InlineData("light_resnet50", "gpu_0/data_0", TensorEncoding.RestBinary)]
    [InlineData("light_resnet50", "gpu_0/data_0", TensorEncoding.RestJson)]
    public async Task Light_model_matches_its_golden_output(string model, string inputName, TensorEncoding encoding)
    {
        const int n = 1 * 3 * 224 * 224;
        var data = new byte[n * 4];
        for (var i = 0; i < n; i++)
        {
            BitConverter.TryWriteBytes(data.AsSpan(i * 4), (float)i / n);
        }
        var input = new WireTensor(inputName, "FP32", [1, 3, 224, 224], data);
        var golden = TensorProtoFile.Read(Path.Combine(Paths.SharedModels, "onnx", "light", model + "_output_0.pb"));
        var metadata = await fixture.Server.Grpc.ModelMetadataAsync(new Protocol.ModelMetadataRequest { Name = model });
        Assert.Equal(inputName, Assert.Single(metadata.Inputs).Name);
        var expected = WireTensor.FromOnnx(golden, metadata.Outputs[0].Name);

        var output = Assert.Single(await InferClient.InferAsync(fixture.Server, encoding, model, [input]));
        Assert.Null(expected.Compare(output));
        Assert.Equal(1000, output.ElementCount);
    }
}
