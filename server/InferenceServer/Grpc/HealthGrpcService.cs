using Grpc.Core;
using Grpc.Health.V1;
using InferenceServer.Inference;
using InferenceServer.Repository;

namespace InferenceServer.Grpc;

/// <summary>
/// The standard <c>grpc.health.v1.Health</c> service, for Kubernetes' gRPC probes and mesh health checks: the empty
/// service name is the server's readiness, a model's name is that model's readiness (NOT_FOUND for an unknown
/// model, as the protocol asks). Both are NOT_SERVING from the start of a drain.
/// </summary>
internal sealed class HealthGrpcService(Lifecycle.ServerLifecycle lifecycle) : Health.HealthBase
{
    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(500);

    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context) =>
        Task.FromResult(new HealthCheckResponse { Status = StatusOf(request.Service) });

    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        // Sends the status, then every change, until the client leaves.
        HealthCheckResponse.Types.ServingStatus? last = null;
        while (!context.CancellationToken.IsCancellationRequested)
        {
            HealthCheckResponse.Types.ServingStatus status;
            try
            {
                status = StatusOf(request.Service);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                status = HealthCheckResponse.Types.ServingStatus.ServiceUnknown;
            }
            if (status != last)
            {
                await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, context.CancellationToken);
                last = status;
            }
            try
            {
                await Task.Delay(WatchInterval, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private HealthCheckResponse.Types.ServingStatus StatusOf(string service)
    {
        bool serving;
        if (string.IsNullOrEmpty(service))
        {
            serving = lifecycle.IsReady;
        }
        else
        {
            try
            {
                serving = lifecycle.IsModelReady(service, "");
            }
            catch (InferenceException e) when (e.Kind == InferenceErrorKind.NotFound)
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"unknown service '{service}': not the server (\"\") nor a model"));
            }
        }
        return serving ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;
    }
}
