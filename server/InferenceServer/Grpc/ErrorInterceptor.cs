using Grpc.Core;
using Grpc.Core.Interceptors;
using InferenceServer.Inference;

namespace InferenceServer.Grpc;

/// <summary>The gRPC error contract: core errors become the matching status code; anything unexpected is INTERNAL with no details.</summary>
internal sealed partial class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, context);
        }
    }

    public static StatusCode StatusCodeOf(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        InferenceErrorKind.NotFound => StatusCode.NotFound,
        InferenceErrorKind.Unavailable => StatusCode.Unavailable,
        InferenceErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        InferenceErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        InferenceErrorKind.DeadlineExceeded => StatusCode.DeadlineExceeded,
        _ => StatusCode.Internal,
    };

    private RpcException Translate(Exception e, ServerCallContext context)
    {
        switch (e)
        {
            case InferenceException inference:
                var trailers = new Metadata();
                if (inference.RetryAfter is { } retryAfter)
                {
                    // gRPC's standard pushback hint, honoured by clients with a retry policy.
                    trailers.Add("grpc-retry-pushback-ms", ((long)retryAfter.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
                    trailers.Add("retry-after", Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                if (inference.RateLimit is { } rateLimit)
                {
                    trailers.Add(Protocol.RequestMetadata.LimitHeader, rateLimit.Limit.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    trailers.Add(Protocol.RequestMetadata.RemainingHeader, rateLimit.Remaining.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    trailers.Add(Protocol.RequestMetadata.ResetHeader, rateLimit.ResetSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                return new RpcException(new Status(StatusCodeOf(inference.Kind), inference.Message), trailers);
            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled"));
            default:
                Log.Unhandled(logger, context.Method, e);
                return new RpcException(new Status(StatusCode.Internal, "internal server error"));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error serving {Method}")]
        public static partial void Unhandled(ILogger logger, string method, Exception exception);
    }
}
