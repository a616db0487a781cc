using InferenceServer.Client.Cli;
using InferenceServer.Observability;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Client;

/// <summary><c>infer --header K=V</c> reaches the server, over both protocols (seen in the server's access log).</summary>
public sealed class InferCliHeaderTests
{
    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task Header_option_is_sent_with_the_request(string protocol)
    {
        var log = new CapturedAccessLog();
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, services => services.AddSingleton<IAccessLogSink>(log));
        string[] target = protocol == "grpc" ? ["--grpc", $"127.0.0.1:{server.Endpoints.GrpcPort}"] : ["--url", $"http://127.0.0.1:{server.Endpoints.HttpPort}"];
        var requestId = $"infer-cli-{protocol}-1";
        var request = Path.Combine(Paths.NewTempDirectory("infer-header"), "request.json");
        var sixteen = string.Join(", ", Enumerable.Range(0, 16));
        await File.WriteAllTextAsync(request, $$$"""{"INPUT0": {"datatype": "INT32", "shape": [1, 16], "data": [{{{sixteen}}}]}, "INPUT1": {"datatype": "INT32", "shape": [1, 16], "data": [{{{sixteen}}}]}}""");
        var error = new StringWriter();

        var code = await InferCommandLine.RunAsync(["predict", "simple", "--json", request, "-H", $"x-request-id={requestId}", .. target], new StringWriter(), error);

        Assert.True(code == 0, error.ToString());
        var line = await log.ForRequestAsync(requestId);
        Assert.Equal("simple", line.GetProperty("model").GetString());
    }
}
