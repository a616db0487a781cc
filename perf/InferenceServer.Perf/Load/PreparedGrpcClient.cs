using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// gRPC ModelInfer as a load generator should send it: the request serialized once (the same bytes every call, handed
/// to the transport as they are), the response checked without being decoded (its top-level fields are walked in the
/// transport's buffer for at least one <c>outputs</c> entry; nothing is allocated for it), and the calls spread round
/// robin over the connection's gRPC channels (one HTTP/2 connection each). Any gRPC status but OK throws
/// <see cref="RpcException"/> and counts as <c>grpc:CODE</c>. What still allocates per call is Grpc.Net.Client's own
/// call state (its HttpRequestMessage, call object and the task); the benchmarks print this process's GCs per cell.
/// </summary>
internal sealed class PreparedGrpcClient : IInferClient, IGrpcRequest
{
    private static readonly Marshaller<byte[]> RequestMarshaller = new((bytes, context) => context.Complete(bytes), _ => throw new NotSupportedException());
    private static readonly Marshaller<ResponseCheck> ResponseMarshaller = new((_, _) => throw new NotSupportedException(), context => ResponseCheck.Scan(context.PayloadAsReadOnlySequence()));

    private static readonly Method<byte[], ResponseCheck> ModelInfer = new(MethodType.Unary, "inference.GRPCInferenceService", "ModelInfer", RequestMarshaller, ResponseMarshaller);

    private readonly CallInvoker[] _invokers;
    private readonly byte[] _request;
    private int _next;

    public PreparedGrpcClient(CallInvoker[] invokers, string model, IReadOnlyList<InputTensor> inputs)
    {
        _invokers = invokers;
        _request = Build(model, inputs).ToByteArray();
    }

    public string Protocol => "grpc";

    /// <summary>The serialized request (the message alone, without gRPC's 5-byte frame prefix).</summary>
    public ReadOnlyMemory<byte> Request => _request;

    public async Task InferAsync(CancellationToken cancellationToken)
    {
        var invoker = _invokers[(int)((uint)Interlocked.Increment(ref _next) % (uint)_invokers.Length)];
        using var call = invoker.AsyncUnaryCall(ModelInfer, null, new CallOptions(cancellationToken: cancellationToken), _request);
        var check = await call.ResponseAsync.ConfigureAwait(false);
        if (!check.HasOutputs)
        {
            throw new InvalidOperationException("the response has no outputs");
        }
    }

    public static ModelInferRequest Build(string model, IReadOnlyList<InputTensor> inputs)
    {
        var request = new ModelInferRequest { ModelName = model };
        foreach (var input in inputs)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = input.Name, Datatype = input.Datatype };
            tensor.Shape.Add(input.Shape);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(ByteString.CopyFrom(input.Data));
        }
        return request;
    }

    /// <summary>The request as one gRPC message on the wire (compression flag 0, big-endian length, message), for h2load's body file.</summary>
    public byte[] FramedRequest()
    {
        var framed = new byte[5 + _request.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)_request.Length);
        _request.CopyTo(framed, 5);
        return framed;
    }
}

/// <summary>The one thing the load generator checks in a ModelInferResponse: whether it has an output. Two shared instances, no allocation.</summary>
internal sealed class ResponseCheck
{
    private const int OutputsField = 5;
    public static readonly ResponseCheck WithOutputs = new(true);
    public static readonly ResponseCheck WithoutOutputs = new(false);

    private ResponseCheck(bool hasOutputs) => HasOutputs = hasOutputs;

    public bool HasOutputs { get; }

    /// <summary>Walks the message's top-level fields (tags and lengths only) for field 5, <c>outputs</c>.</summary>
    public static ResponseCheck Scan(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        while (!reader.End)
        {
            if (!TryVarint(ref reader, out var tag))
            {
                throw new InvalidDataException("the response is not a protobuf message");
            }
            var field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    if (!TryVarint(ref reader, out _)) throw new InvalidDataException("truncated varint in the response");
                    break;
                case 1:
                    reader.Advance(8);
                    break;
                case 5:
                    reader.Advance(4);
                    break;
                case 2:
                    if (field == OutputsField)
                    {
                        return WithOutputs;
                    }
                    if (!TryVarint(ref reader, out var length) || (ulong)reader.Remaining < length)
                    {
                        throw new InvalidDataException("truncated field in the response");
                    }
                    reader.Advance((long)length);
                    break;
                default:
                    throw new InvalidDataException($"unexpected wire type {tag & 7} in the response");
            }
        }
        return WithoutOutputs;
    }

    private static bool TryVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }
        return false;
    }
}
