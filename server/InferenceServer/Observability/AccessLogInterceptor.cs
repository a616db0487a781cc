using Grpc.Core;
using Grpc.Core.Interceptors;
using InferenceServer.Protocol;

namespace InferenceServer.Observability;

/// <summary>
/// Tells the access log which model a gRPC call is for: the requested one from the request message
/// (<c>model_name</c>/<c>model_version</c>, or <c>name</c>/<c>version</c>), then the version that served from the
/// response. On ModelStreamInfer, the first request and the first response that names its version.
/// </summary>
internal sealed class AccessLogInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var entry = Entry(context);
        if (entry is null)
        {
            return await continuation(request, context);
        }
        Requested(entry, request);
        var response = await continuation(request, context);
        Served(entry, response);
        return response;
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var entry = Entry(context);
        return entry is null
            ? continuation(requestStream, responseStream, context)
            : continuation(new ObservedReader<TRequest>(requestStream, entry), new ObservedWriter<TResponse>(responseStream, entry), context);
    }

    private static AccessLogEntry? Entry(ServerCallContext context) => context.GetHttpContext().Features.Get<AccessLogEntry>();

    private static void Requested(AccessLogEntry entry, object? message)
    {
        switch (message)
        {
            case ModelInferRequest m: entry.SetRequested(m.ModelName, m.ModelVersion); break;
            case ModelReadyRequest m: entry.SetRequested(m.Name, m.Version); break;
            case ModelMetadataRequest m: entry.SetRequested(m.Name, m.Version); break;
            case ModelConfigRequest m: entry.SetRequested(m.Name, m.Version); break;
            case ModelStatisticsRequest m: entry.SetRequested(m.Name, m.Version); break;
            case RepositoryModelLoadRequest m: entry.SetRequested(m.ModelName, ""); break;
            case RepositoryModelUnloadRequest m: entry.SetRequested(m.ModelName, ""); break;
        }
    }

    private static void Served(AccessLogEntry entry, object? message)
    {
        var response = message switch
        {
            ModelInferResponse m => m,
            ModelStreamInferResponse m => m.InferResponse,
            _ => null,
        };
        if (response is not null)
        {
            entry.SetServed(response.ModelName, response.ModelVersion);
        }
    }

    private sealed class ObservedReader<T>(IAsyncStreamReader<T> inner, AccessLogEntry entry) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (!await inner.MoveNext(cancellationToken))
            {
                return false;
            }
            Requested(entry, inner.Current);
            return true;
        }
    }

    private sealed class ObservedWriter<T>(IServerStreamWriter<T> inner, AccessLogEntry entry) : IServerStreamWriter<T>
    {
        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public Task WriteAsync(T message)
        {
            Served(entry, message);
            return inner.WriteAsync(message);
        }

        public Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            Served(entry, message);
            return inner.WriteAsync(message, cancellationToken);
        }
    }
}
