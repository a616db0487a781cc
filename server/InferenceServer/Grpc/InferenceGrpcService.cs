using Grpc.Core;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using InferenceServer.Repository;

namespace InferenceServer.Grpc;

/// <summary>
/// inference.GRPCInferenceService: the Open Inference Protocol v2 over gRPC with Triton's extensions. A thin adapter over
/// the core; errors are translated by <see cref="ErrorInterceptor"/>. Generative models take a BYTES input
/// <c>text_input</c> and answer <c>text_output</c>, streamed on ModelStreamInfer; the dispatcher tells them apart.
/// </summary>
internal sealed class InferenceGrpcService(
    ModelRepository repository, Lifecycle.ServerLifecycle lifecycle, IInferenceDispatcher dispatcher, ILogger<InferenceGrpcService> logger)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = lifecycle.IsReady });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ModelReadyResponse { Ready = lifecycle.IsModelReady(request.Name, request.Version) });

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(ProtocolMessages.ServerMetadata());

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(ProtocolMessages.ModelMetadata(repository, repository.GetReady(request.Name, request.Version)));

    public override Task<ModelConfigResponse> ModelConfig(ModelConfigRequest request, ServerCallContext context) =>
        Task.FromResult(new ModelConfigResponse { Config = ProtocolMessages.ModelConfig(repository.GetReady(request.Name, request.Version).Config!) });

    public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context) =>
        Task.FromResult(ProtocolMessages.Statistics(repository, request.Name, request.Version));

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        using var inference = GrpcTensorCodec.Decode(request, dispatcher.Limits);
        inference.Deadline = DeadlineOf(context);
        inference.Tenant = Protocol.RequestMetadata.TenantOf(context.GetHttpContext());
        var response = await dispatcher.InferAsync(inference, context.CancellationToken);
        if (response.FallbackFor is not null)
        {
            context.GetHttpContext().Response.Headers[Protocol.RequestMetadata.ServedByModelHeader] = response.ServedBy;
        }
        // The reply's raw contents are views of the response's buffers: release them once the call is complete.
        context.GetHttpContext().Response.RegisterForDispose(response);
        return GrpcTensorCodec.Encode(response, raw: request.RawInputContents.Count > 0);
    }

    public override async Task ModelStreamInfer(
        IAsyncStreamReader<ModelInferRequest> requestStream, IServerStreamWriter<ModelStreamInferResponse> responseStream, ServerCallContext context)
    {
        // Each tensor request on the stream gets one response, in order; an error is reported in its response and the
        // stream goes on. Generative requests run concurrently, each writing its pieces as they come.
        using var writer = new StreamResponseWriter(responseStream);
        var generations = new List<Task>();
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                InferenceResponse? response = null;
                ModelStreamInferResponse reply;
                try
                {
                    using var inference = GrpcTensorCodec.Decode(request, dispatcher.Limits);
                    inference.Deadline = DeadlineOf(context);
                    inference.Tenant = Protocol.RequestMetadata.TenantOf(context.GetHttpContext());
                    var dispatched = dispatcher.Dispatch(inference, context.CancellationToken);
                    if (dispatched.Generation is { } generation)
                    {
                        generations.RemoveAll(t => t.IsCompleted);
                        generations.Add(new GrpcGeneration(logger).StreamAsync(request, generation, dispatched.Streamed, writer, context.CancellationToken));
                        continue;
                    }
                    response = await dispatched.Tensors!;
                    reply = new ModelStreamInferResponse { InferResponse = GrpcTensorCodec.Encode(response, raw: request.RawInputContents.Count > 0) };
                }
                catch (InferenceException e)
                {
                    reply = new ModelStreamInferResponse { ErrorMessage = e.Message, InferResponse = new ModelInferResponse { Id = request.Id, ModelName = request.ModelName } };
                }
                using (response)
                {
                    // The message is serialized by the time the write completes; only then may the buffers go.
                    await writer.WriteAsync(reply, context.CancellationToken);
                }
            }
        }
        finally
        {
            // The call ends when this method returns: every generation must have written its last response by then.
            await Task.WhenAll(generations);
        }
    }

    /// <summary>The call's gRPC deadline as a Stopwatch timestamp (0 when the client set none).</summary>
    private static long DeadlineOf(ServerCallContext context)
    {
        if (context.Deadline >= DateTime.MaxValue.AddDays(-1))
        {
            return 0;
        }
        var remaining = context.Deadline - DateTime.UtcNow;
        return System.Diagnostics.Stopwatch.GetTimestamp() + (long)(Math.Max(0, remaining.TotalSeconds) * System.Diagnostics.Stopwatch.Frequency);
    }

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context) =>
        Task.FromResult(ProtocolMessages.Index(repository, request.Ready));

    public override async Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context)
    {
        RepositoryParameters.Check(request.Parameters.Keys);
        await repository.LoadAsync(request.ModelName, context.CancellationToken);
        if (repository.ReadyVersions(request.ModelName).Count == 0)
        {
            var reasons = string.Join("; ", repository.Versions(request.ModelName).Select(v => v.Reason).Distinct());
            throw InferenceException.Unavailable($"model '{request.ModelName}' failed to load: {reasons}");
        }
        return new RepositoryModelLoadResponse();
    }

    public override async Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context)
    {
        await repository.UnloadAsync(request.ModelName, context.CancellationToken);
        return new RepositoryModelUnloadResponse();
    }
}
