using InferenceServer.Generation;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>Requests the generation admission tests share.</summary>
internal static class GenerationRequests
{
    /// <summary>
    /// Starts a greedy stream of 4,000 tokens of "a" on <paramref name="model"/> in the server's process, and waits for
    /// its first text: it holds a running slot until <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public static async Task<GenerationStream> HoldSlotAsync(RunningServer server, string model, CancellationToken cancellationToken)
    {
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        var stream = await generator.GenerateAsync(model, null, new GenerationRequest
        {
            Prompt = "a",
            MaxTokens = 4000,
            IgnoreEos = true,
            Sampling = new SamplingParameters { Temperature = 0 },
        }, cancellationToken);
        Assert.True(await stream.Chunks.WaitToReadAsync(cancellationToken));
        return stream;
    }

    /// <summary>A KServe v2 gRPC request with <c>text_input</c> <paramref name="prompt"/> and the given Int64 parameters.</summary>
    public static Protocol.ModelInferRequest GrpcText(string model, string prompt, params (string Name, long Value)[] parameters)
    {
        var request = new Protocol.ModelInferRequest { ModelName = model };
        request.Inputs.Add(new Protocol.ModelInferRequest.Types.InferInputTensor
        {
            Name = "text_input",
            Datatype = "BYTES",
            Shape = { 1 },
            Contents = new Protocol.InferTensorContents { BytesContents = { Google.Protobuf.ByteString.CopyFromUtf8(prompt) } },
        });
        foreach (var (name, value) in parameters)
        {
            request.Parameters[name] = new Protocol.InferParameter { Int64Param = value };
        }
        return request;
    }
}
