using Grpc.Core;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// The bare gRPC echo: ModelInfer answered with its own inputs (names, datatypes, shapes, and the very
/// <c>raw_input_contents</c> buffers as <c>raw_output_contents</c>). No model, no scheduler, no validation, no
/// statistics: what remains is the transport (HTTP/2, protobuf, Kestrel, the gRPC client) on this machine.
/// </summary>
internal sealed class EchoGrpcService : GRPCInferenceService.GRPCInferenceServiceBase
{
    private static long _answered;

    /// <summary>ModelInfer calls answered (status OK) since the process started: an outside client's success count (h2load counts HTTP statuses only).</summary>
    public static long Answered => Interlocked.Read(ref _answered);

    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ModelReadyResponse { Ready = true });

    public override Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        var response = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = request.ModelVersion, Id = request.Id };
        foreach (var input in request.Inputs)
        {
            var output = new ModelInferResponse.Types.InferOutputTensor { Name = input.Name, Datatype = input.Datatype, Contents = input.Contents };
            output.Shape.Add(input.Shape);
            response.Outputs.Add(output);
        }
        response.RawOutputContents.Add(request.RawInputContents);
        Interlocked.Increment(ref _answered);
        return Task.FromResult(response);
    }
}
