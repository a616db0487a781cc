using Google.Protobuf;
using Google.Protobuf.Collections;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using InferenceServer.Tensors;
using DataType = InferenceServer.Tensors.DataType;

namespace InferenceServer.Grpc;

/// <summary>
/// ModelInfer's tensors to and from the core: <c>raw_input_contents</c> are copied once into pooled buffers; typed
/// <c>contents</c> are written element by element through <see cref="TensorWriter"/>. Responses answer raw when the
/// request used raw (and always for FP16/BF16, which have no typed field).
/// </summary>
internal static class GrpcTensorCodec
{
    private static readonly RequestLimits DefaultLimits = new();

    /// <summary>Decodes a request; each input's shape is checked against <paramref name="limits"/> (the defaults when null) before its contents are copied.</summary>
    public static InferenceRequest Decode(ModelInferRequest message, RequestLimits? limits = null)
    {
        limits ??= DefaultLimits;
        long requestBytes = 0;
        var request = new InferenceRequest(message.ModelName, message.ModelVersion) { Id = message.Id };
        try
        {
            CopyParameters(message.Parameters, request.Parameters);
            request.ReadSchedulingParameters();
            var raw = message.RawInputContents;
            if (raw.Count > 0 && raw.Count != message.Inputs.Count)
            {
                throw InferenceException.InvalidArgument(
                    $"raw_input_contents has {raw.Count} entries but the request has {message.Inputs.Count} inputs; give one per input, in order");
            }
            for (var i = 0; i < message.Inputs.Count; i++)
            {
                var input = message.Inputs[i];
                if (!DataTypes.TryParse(input.Datatype, out var type) || input.Datatype.StartsWith("TYPE_", StringComparison.Ordinal))
                {
                    throw InferenceException.InvalidArgument($"input '{input.Name}' has unknown datatype '{input.Datatype}'");
                }
                var shape = input.Shape.ToArray();
                limits.CheckInput(input.Name, type, shape, ref requestBytes);
                TensorShape.TryGetElementCount(shape, out var count);
                TensorBuffer data;
                if (raw.Count > 0)
                {
                    if (input.Contents is not null && HasContents(input.Contents))
                    {
                        throw InferenceException.InvalidArgument($"input '{input.Name}' has both contents and raw_input_contents");
                    }
                    // The message stays alive until the call ends, so the engine reads its bytes in place.
                    data = TensorBuffer.Wrap(raw[i].Memory);
                }
                else
                {
                    data = DecodeContents(input.Name, type, input.Contents, count);
                }
                request.AddInput(new Tensor(input.Name, type, shape, data));
            }
            foreach (var output in message.Outputs)
            {
                if (output.Parameters.ContainsKey("classification"))
                {
                    throw InferenceException.InvalidArgument($"output '{output.Name}': the classification extension is not supported");
                }
                if (request.RequestedOutputs.Contains(output.Name))
                {
                    throw InferenceException.InvalidArgument($"output '{output.Name}' is requested more than once");
                }
                request.RequestedOutputs.Add(output.Name);
            }
            return request;
        }
        catch
        {
            request.Dispose();
            throw;
        }
    }

    private static void CopyParameters(MapField<string, InferParameter> parameters, Dictionary<string, object> target)
    {
        foreach (var (key, value) in parameters)
        {
            target[key] = value.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.BoolParam => value.BoolParam,
                InferParameter.ParameterChoiceOneofCase.Int64Param => value.Int64Param,
                InferParameter.ParameterChoiceOneofCase.StringParam => value.StringParam,
                InferParameter.ParameterChoiceOneofCase.DoubleParam => value.DoubleParam,
                InferParameter.ParameterChoiceOneofCase.Uint64Param => (long)Math.Min(value.Uint64Param, long.MaxValue), // beyond long: as good as unbounded, never negative
                _ => "",
            };
        }
    }

    private static bool HasContents(InferTensorContents c) =>
        c.BoolContents.Count + c.IntContents.Count + c.Int64Contents.Count + c.UintContents.Count + c.Uint64Contents.Count +
        c.Fp32Contents.Count + c.Fp64Contents.Count + c.BytesContents.Count > 0;

    private static TensorBuffer DecodeContents(string name, DataType type, InferTensorContents? contents, long count)
    {
        contents ??= new InferTensorContents();
        var (field, actual) = type switch
        {
            DataType.Bool => ("bool_contents", contents.BoolContents.Count),
            DataType.Int8 or DataType.Int16 or DataType.Int32 => ("int_contents", contents.IntContents.Count),
            DataType.Int64 => ("int64_contents", contents.Int64Contents.Count),
            DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => ("uint_contents", contents.UintContents.Count),
            DataType.UInt64 => ("uint64_contents", contents.Uint64Contents.Count),
            DataType.Fp32 => ("fp32_contents", contents.Fp32Contents.Count),
            DataType.Fp64 => ("fp64_contents", contents.Fp64Contents.Count),
            DataType.Bytes => ("bytes_contents", contents.BytesContents.Count),
            _ => throw InferenceException.InvalidArgument(
                $"input '{name}': {type.Name()} has no typed contents field; send it in raw_input_contents"),
        };
        if (HasContents(contents) && actual == 0)
        {
            throw InferenceException.InvalidArgument($"input '{name}' of datatype {type.Name()} must use {field}");
        }
        if (actual != count)
        {
            throw InferenceException.InvalidArgument($"input '{name}' has {actual} elements in {field} but its shape needs {count}");
        }
        using var writer = new TensorWriter(type, count);
        switch (type)
        {
            case DataType.Bool: foreach (var v in contents.BoolContents) { writer.Write((byte)(v ? 1 : 0)); } break;
            case DataType.Int8: foreach (var v in contents.IntContents) { CheckRange(name, v, sbyte.MinValue, sbyte.MaxValue); writer.Write((sbyte)v); } break;
            case DataType.Int16: foreach (var v in contents.IntContents) { CheckRange(name, v, short.MinValue, short.MaxValue); writer.Write((short)v); } break;
            case DataType.Int32: foreach (var v in contents.IntContents) { writer.Write(v); } break;
            case DataType.Int64: foreach (var v in contents.Int64Contents) { writer.Write(v); } break;
            case DataType.UInt8: foreach (var v in contents.UintContents) { CheckRange(name, v, 0, byte.MaxValue); writer.Write((byte)v); } break;
            case DataType.UInt16: foreach (var v in contents.UintContents) { CheckRange(name, v, 0, ushort.MaxValue); writer.Write((ushort)v); } break;
            case DataType.UInt32: foreach (var v in contents.UintContents) { writer.Write(v); } break;
            case DataType.UInt64: foreach (var v in contents.Uint64Contents) { writer.Write(v); } break;
            case DataType.Fp32: foreach (var v in contents.Fp32Contents) { writer.Write(v); } break;
            case DataType.Fp64: foreach (var v in contents.Fp64Contents) { writer.Write(v); } break;
            case DataType.Bytes: foreach (var v in contents.BytesContents) { writer.WriteBytes(v.Span); } break;
        }
        return writer.Detach();
    }

    private static void CheckRange(string name, long value, long min, long max)
    {
        if (value < min || value > max)
        {
            throw InferenceException.InvalidArgument($"input '{name}': value {value} is out of range [{min}, {max}]");
        }
    }

    /// <summary>Encodes a response; raw outputs are views of <paramref name="response"/>'s buffers, so it must not be disposed before the message is written.</summary>
    public static ModelInferResponse Encode(InferenceResponse response, bool raw)
    {
        var message = new ModelInferResponse { ModelName = response.ModelName, ModelVersion = response.ModelVersion, Id = response.Id };
        if (response.FallbackFor is { } requested)
        {
            // The requested model's circuit breaker was open: say who served the request instead.
            message.Parameters[Protocol.RequestMetadata.ServedByModelParameter] = new InferParameter { StringParam = response.ServedBy };
            message.Parameters[Protocol.RequestMetadata.FallbackForParameter] = new InferParameter { StringParam = requested };
        }
        raw |= response.Outputs.Exists(o => o.DataType is DataType.Fp16 or DataType.Bf16);
        foreach (var output in response.Outputs)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.DataType.Name() };
            tensor.Shape.Add(output.Shape);
            if (raw)
            {
                // No copy: the caller keeps the response (and so these bytes) alive until the message is written.
                message.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(output.Data.Memory));
            }
            else
            {
                tensor.Contents = EncodeContents(output);
            }
            message.Outputs.Add(tensor);
        }
        return message;
    }

    private static InferTensorContents EncodeContents(Tensor tensor)
    {
        var c = new InferTensorContents();
        switch (tensor.DataType)
        {
            case DataType.Bool: foreach (var v in tensor.Elements<byte>()) { c.BoolContents.Add(v != 0); } break;
            case DataType.Int8: foreach (var v in tensor.Elements<sbyte>()) { c.IntContents.Add(v); } break;
            case DataType.Int16: foreach (var v in tensor.Elements<short>()) { c.IntContents.Add(v); } break;
            case DataType.Int32: AddAll(c.IntContents, tensor.Elements<int>()); break;
            case DataType.Int64: AddAll(c.Int64Contents, tensor.Elements<long>()); break;
            case DataType.UInt8: foreach (var v in tensor.Elements<byte>()) { c.UintContents.Add(v); } break;
            case DataType.UInt16: foreach (var v in tensor.Elements<ushort>()) { c.UintContents.Add(v); } break;
            case DataType.UInt32: AddAll(c.UintContents, tensor.Elements<uint>()); break;
            case DataType.UInt64: AddAll(c.Uint64Contents, tensor.Elements<ulong>()); break;
            case DataType.Fp32: AddAll(c.Fp32Contents, tensor.Elements<float>()); break;
            case DataType.Fp64: AddAll(c.Fp64Contents, tensor.Elements<double>()); break;
            case DataType.Bytes:
                ReadOnlySpan<byte> data = tensor.Data.Span;
                while (!data.IsEmpty)
                {
                    c.BytesContents.Add(ByteString.CopyFrom(BytesElements.ReadNext(ref data)));
                }
                break;
        }
        return c;
    }

    private static void AddAll<T>(RepeatedField<T> field, ReadOnlySpan<T> values)
    {
        field.Capacity = values.Length;
        foreach (var v in values)
        {
            field.Add(v);
        }
    }
}
