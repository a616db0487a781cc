using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;
using InferenceServer.Grpc;
using InferenceServer.Inference;
using InferenceServer.Protocol;
using InferenceServer.Tensors;
using DataType = InferenceServer.Tensors.DataType;
using InputTensor = InferenceServer.Protocol.ModelInferRequest.Types.InferInputTensor;
using RequestedOutput = InferenceServer.Protocol.ModelInferRequest.Types.InferRequestedOutputTensor;

namespace InferenceServer.Tests.Grpc;

/// <summary>
/// <see cref="GrpcTensorCodec"/> called directly on protobuf messages: typed <c>contents</c> and
/// <c>raw_input_contents</c> into the core's tensors, tensors back into typed or raw outputs, and every malformed
/// request refused as INVALID_ARGUMENT naming the input.
/// </summary>
public sealed class GrpcTensorCodecTests
{
    private static byte[] Le<T>(params T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] Prefixed(params byte[][] elements)
    {
        var stream = new MemoryStream();
        foreach (var e in elements)
        {
            var prefix = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(prefix, (uint)e.Length);
            stream.Write(prefix);
            stream.Write(e);
        }
        return stream.ToArray();
    }

    /// <summary>For each datatype with a typed field: the shape, the typed contents, and the little-endian bytes they mean.</summary>
    private static (long[] Shape, InferTensorContents Contents, byte[] Bytes) TypedCase(DataType type)
    {
        var c = new InferTensorContents();
        switch (type)
        {
            case DataType.Bool: c.BoolContents.Add([true, false, true]); return ([3], c, [1, 0, 1]);
            case DataType.Int8: c.IntContents.Add([-128, 127, 0]); return ([3], c, Le<sbyte>(-128, 127, 0));
            case DataType.Int16: c.IntContents.Add([short.MinValue, short.MaxValue]); return ([2], c, Le(short.MinValue, short.MaxValue));
            case DataType.Int32: c.IntContents.Add([int.MinValue, int.MaxValue, -1, 0]); return ([2, 2], c, Le(int.MinValue, int.MaxValue, -1, 0));
            case DataType.Int64: c.Int64Contents.Add([long.MinValue, long.MaxValue]); return ([1, 2], c, Le(long.MinValue, long.MaxValue));
            case DataType.UInt8: c.UintContents.Add([0, 255]); return ([2], c, [0, 255]);
            case DataType.UInt16: c.UintContents.Add([0, ushort.MaxValue]); return ([2], c, Le<ushort>(0, ushort.MaxValue));
            case DataType.UInt32: c.UintContents.Add([uint.MaxValue, 7]); return ([2], c, Le(uint.MaxValue, 7u));
            case DataType.UInt64: c.Uint64Contents.Add([ulong.MaxValue]); return ([1], c, Le(ulong.MaxValue));
            case DataType.Fp32: c.Fp32Contents.Add([-0f, float.MaxValue, float.Epsilon, float.NegativeInfinity]); return ([4], c, Le(-0f, float.MaxValue, float.Epsilon, float.NegativeInfinity));
            case DataType.Fp64: c.Fp64Contents.Add([double.MinValue, -0d, double.NaN]); return ([3], c, Le(double.MinValue, -0d, double.NaN));
            case DataType.Bytes:
                c.BytesContents.Add([ByteString.Empty, ByteString.CopyFromUtf8("héllo"), ByteString.CopyFrom(0, 255)]);
                return ([3], c, Prefixed([], "héllo"u8.ToArray(), [0, 255]));
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    public static TheoryData<DataType> TypedDataTypes { get; } = new(DataTypes.All.Where(t => t is not (DataType.Fp16 or DataType.Bf16)));

    private static ModelInferRequest Message(params InputTensor[] inputs)
    {
        var message = new ModelInferRequest { ModelName = "m", ModelVersion = "2", Id = "req-1" };
        message.Inputs.Add(inputs);
        return message;
    }

    private static InputTensor Input(string name, string datatype, long[] shape, InferTensorContents? contents = null)
    {
        var input = new InputTensor { Name = name, Datatype = datatype, Contents = contents };
        input.Shape.Add(shape);
        return input;
    }

    private static string Invalid(ModelInferRequest message, RequestLimits? limits = null)
    {
        var e = Assert.Throws<InferenceException>(() => GrpcTensorCodec.Decode(message, limits));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        return e.Message;
    }

    [Theory]
    [MemberData(nameof(TypedDataTypes))]
    public void Typed_contents_decode_to_the_little_endian_elements_and_encode_back_to_the_same_contents(DataType type)
    {
        var (shape, contents, bytes) = TypedCase(type);
        using var request = GrpcTensorCodec.Decode(Message(Input("x", type.Name(), shape, contents)));
        var tensor = Assert.Single(request.Inputs);
        Assert.Equal(type, tensor.DataType);
        Assert.Equal(shape, tensor.Shape);
        Assert.Equal(bytes, tensor.Data.Span.ToArray());

        using var response = new InferenceResponse("m", "2", "req-1");
        response.Outputs.Add(new Tensor("y", type, shape, TensorBuffer.CopyOf(bytes)));
        var typed = GrpcTensorCodec.Encode(response, raw: false);
        var output = Assert.Single(typed.Outputs);
        Assert.Equal(("y", type.Name()), (output.Name, output.Datatype));
        Assert.Equal(shape, output.Shape);
        Assert.Equal(contents, output.Contents);
        Assert.Empty(typed.RawOutputContents);

        var raw = GrpcTensorCodec.Encode(response, raw: true);
        Assert.Null(Assert.Single(raw.Outputs).Contents);
        Assert.Equal(bytes, Assert.Single(raw.RawOutputContents).ToByteArray());
    }

    [Fact]
    public void Raw_input_contents_are_taken_one_per_input_in_order_for_every_datatype()
    {
        var half = Le((Half)1.5, Half.MaxValue, (Half)(-0.0));
        var bf16 = Le<ushort>(0x3FC0, 0xFF80); // 1.5, -inf
        var strings = Prefixed("a"u8.ToArray(), "ü"u8.ToArray());
        var ints = Le(1, -2);
        var message = Message(Input("h", "FP16", [3]), Input("b", "BF16", [1, 2]), Input("s", "BYTES", [2]), Input("i", "INT32", [2]));
        message.RawInputContents.Add([ByteString.CopyFrom(half), ByteString.CopyFrom(bf16), ByteString.CopyFrom(strings), ByteString.CopyFrom(ints)]);

        using var request = GrpcTensorCodec.Decode(message);
        Assert.Equal(["h", "b", "s", "i"], request.Inputs.Select(i => i.Name));
        Assert.Equal([DataType.Fp16, DataType.Bf16, DataType.Bytes, DataType.Int32], request.Inputs.Select(i => i.DataType));
        Assert.Equal(half, request.Inputs[0].Data.Span.ToArray());
        Assert.Equal(bf16, request.Inputs[1].Data.Span.ToArray());
        Assert.Equal(strings, request.Inputs[2].Data.Span.ToArray());
        Assert.Equal(ints, request.Inputs[3].Data.Span.ToArray());
        Assert.Equal([1L, 2L], request.Inputs[1].Shape);
    }

    [Fact]
    public void The_request_id_model_version_parameters_and_requested_outputs_are_kept()
    {
        var contents = new InferTensorContents();
        contents.Int64Contents.Add(long.MinValue);
        var message = Message(Input("x", "INT64", [1], contents));
        message.Parameters["flag"] = new InferParameter { BoolParam = true };
        message.Parameters["count"] = new InferParameter { Int64Param = -3 };
        message.Parameters["name"] = new InferParameter { StringParam = "é" };
        message.Parameters["ratio"] = new InferParameter { DoubleParam = 0.25 };
        message.Parameters["big"] = new InferParameter { Uint64Param = 42 };
        message.Outputs.Add(new RequestedOutput { Name = "b" });
        message.Outputs.Add(new RequestedOutput { Name = "a" });

        using var request = GrpcTensorCodec.Decode(message);
        Assert.Equal(("m", "2", "req-1"), (request.ModelName, request.ModelVersion, request.Id));
        Assert.Equal(true, request.Parameters["flag"]);
        Assert.Equal(-3L, request.Parameters["count"]);
        Assert.Equal("é", request.Parameters["name"]);
        Assert.Equal(0.25, request.Parameters["ratio"]);
        Assert.Equal(42L, request.Parameters["big"]);
        Assert.Equal(["b", "a"], request.RequestedOutputs);
        Assert.Equal(Le(long.MinValue), Assert.Single(request.Inputs).Data.Span.ToArray());
    }

    [Fact]
    public void A_uint64_timeout_beyond_long_is_unbounded_not_negative()
    {
        var message = Message(Input("x", "FP32", [0, 4]));
        message.Parameters["timeout"] = new InferParameter { Uint64Param = ulong.MaxValue };
        using var request = GrpcTensorCodec.Decode(message);
        Assert.Equal(long.MaxValue, request.Parameters["timeout"]);
        Assert.Equal(long.MaxValue, request.TimeoutMicroseconds);
    }

    [Fact]
    public void An_empty_tensor_needs_no_contents()
    {
        using var request = GrpcTensorCodec.Decode(Message(Input("x", "FP32", [0, 4])));
        Assert.Equal(0, Assert.Single(request.Inputs).Data.Length);
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(3, 2)]
    public void A_raw_input_contents_count_that_differs_from_the_inputs_is_refused(int raw, int inputs)
    {
        var message = Message(Enumerable.Range(0, inputs).Select(i => Input("x" + i, "INT32", [1])).ToArray());
        message.RawInputContents.Add(Enumerable.Range(0, raw).Select(_ => ByteString.CopyFrom(Le(1))));
        Assert.Equal(
            $"raw_input_contents has {raw} entries but the request has {inputs} inputs; give one per input, in order",
            Invalid(message));
    }

    [Fact]
    public void Contents_and_raw_input_contents_together_are_refused()
    {
        var contents = new InferTensorContents();
        contents.IntContents.Add(5);
        var message = Message(Input("ok", "INT32", [1]), Input("both", "INT32", [1], contents));
        message.RawInputContents.Add([ByteString.CopyFrom(Le(1)), ByteString.CopyFrom(Le(2))]);
        Assert.Equal("input 'both' has both contents and raw_input_contents", Invalid(message));
    }

    [Theory]
    [InlineData("FP16")]
    [InlineData("BF16")]
    public void Half_width_floats_have_no_typed_field(string datatype)
    {
        var contents = new InferTensorContents();
        contents.Fp32Contents.Add(1f);
        Assert.Equal(
            $"input 'h': {datatype} has no typed contents field; send it in raw_input_contents",
            Invalid(Message(Input("h", datatype, [1], contents))));
    }

    [Theory]
    [InlineData("INT32", "int_contents")]
    [InlineData("UINT8", "uint_contents")]
    [InlineData("BYTES", "bytes_contents")]
    [InlineData("BOOL", "bool_contents")]
    public void Contents_in_the_wrong_typed_field_name_the_right_one(string datatype, string field)
    {
        var contents = new InferTensorContents();
        contents.Fp64Contents.Add(1);
        Assert.Equal($"input 'x' of datatype {datatype} must use {field}", Invalid(Message(Input("x", datatype, [1], contents))));
    }

    [Theory]
    [InlineData(3, new long[] { 4 })]
    [InlineData(5, new long[] { 2, 2 })]
    [InlineData(0, new long[] { 2 })]
    public void An_element_count_that_differs_from_the_shape_is_refused(int given, long[] shape)
    {
        var contents = new InferTensorContents();
        contents.Fp32Contents.Add(Enumerable.Repeat(1f, given));
        Assert.Equal(
            $"input 'x' has {given} elements in fp32_contents but its shape needs {shape.Aggregate(1L, (a, b) => a * b)}",
            Invalid(Message(Input("x", "FP32", shape, contents))));
    }

    [Theory]
    [InlineData("INT8", 128, "[-128, 127]")]
    [InlineData("INT8", -129, "[-128, 127]")]
    [InlineData("INT16", 32768, "[-32768, 32767]")]
    [InlineData("UINT8", 256, "[0, 255]")]
    [InlineData("UINT16", 65536, "[0, 65535]")]
    public void A_value_that_does_not_fit_a_narrow_type_is_refused(string datatype, long value, string range)
    {
        var contents = new InferTensorContents();
        if (datatype.StartsWith('U'))
        {
            contents.UintContents.Add([0, (uint)value]);
        }
        else
        {
            contents.IntContents.Add([0, (int)value]);
        }
        Assert.Equal($"input 'n': value {value} is out of range {range}", Invalid(Message(Input("n", datatype, [2], contents))));
    }

    [Theory]
    [InlineData("FLOAT")]
    [InlineData("TYPE_FP32")]
    [InlineData("")]
    public void An_unknown_datatype_is_refused_naming_the_input(string datatype)
    {
        Assert.Equal($"input 'x' has unknown datatype '{datatype}'", Invalid(Message(Input("x", datatype, [1]))));
    }

    [Fact]
    public void A_lowercase_datatype_is_accepted()
    {
        var contents = new InferTensorContents();
        contents.Fp32Contents.Add(2.5f);
        using var request = GrpcTensorCodec.Decode(Message(Input("x", "fp32", [1], contents)));
        Assert.Equal(Le(2.5f), Assert.Single(request.Inputs).Data.Span.ToArray());
    }

    [Fact]
    public void A_shape_over_the_limits_is_refused_before_its_contents_are_read()
    {
        // The contents are missing: had they been read first, the error would be about their count.
        var message = Invalid(Message(Input("big", "FP32", [1L << 40, 16])));
        Assert.Equal(
            "input 'big' has shape [1099511627776,16] of 17592186044416 elements, over the limit of 67108864 (Limits:MaxTensorElements)",
            message);

        var contents = new InferTensorContents();
        contents.Fp32Contents.Add([1, 2, 3]);
        Assert.Contains("Limits:MaxTensorElements", Invalid(Message(Input("x", "FP32", [3], contents)), new RequestLimits { MaxTensorElements = 2 }));
        // The byte limit adds the inputs up: x's 8 bytes fit in 12, y's 8 more do not.
        var two = new InferTensorContents();
        two.Fp32Contents.Add([1, 2]);
        Assert.Equal(
            "input 'y' has shape [2] of FP32: the request's tensor data would exceed the limit of 12 bytes (Limits:MaxRequestTensorBytes)",
            Invalid(Message(Input("x", "FP32", [2], two), Input("y", "FP32", [2])), new RequestLimits { MaxRequestTensorBytes = 12 }));
    }

    [Fact]
    public void A_negative_dimension_is_refused()
    {
        Assert.StartsWith("input 'x' has invalid shape [-1,3]", Invalid(Message(Input("x", "FP32", [-1, 3]))));
    }

    [Fact]
    public void A_duplicate_input_is_refused()
    {
        var message = Message(Input("x", "FP32", [0]), Input("x", "FP32", [0]));
        Assert.Equal("input 'x' is given more than once", Invalid(message));
    }

    [Fact]
    public void A_duplicate_or_classification_output_is_refused()
    {
        var twice = Message(Input("x", "FP32", [0]));
        twice.Outputs.Add([new RequestedOutput { Name = "y" }, new RequestedOutput { Name = "y" }]);
        Assert.Equal("output 'y' is requested more than once", Invalid(twice));

        var classification = Message(Input("x", "FP32", [0]));
        var output = new RequestedOutput { Name = "y" };
        output.Parameters["classification"] = new InferParameter { Int64Param = 3 };
        classification.Outputs.Add(output);
        Assert.Equal("output 'y': the classification extension is not supported", Invalid(classification));
    }

    [Fact]
    public void A_half_precision_output_makes_the_whole_response_raw()
    {
        using var response = new InferenceResponse("m", "1", "");
        response.Outputs.Add(new Tensor("i", DataType.Int32, [2], TensorBuffer.CopyOf(Le(1, 2))));
        response.Outputs.Add(new Tensor("h", DataType.Fp16, [1], TensorBuffer.CopyOf(Le((Half)0.5))));
        var message = GrpcTensorCodec.Encode(response, raw: false);
        Assert.All(message.Outputs, o => Assert.Null(o.Contents));
        Assert.Equal([Le(1, 2), Le((Half)0.5)], message.RawOutputContents.Select(b => b.ToByteArray()));
        Assert.Equal(["INT32", "FP16"], message.Outputs.Select(o => o.Datatype));
    }

    [Fact]
    public void A_response_served_by_a_fallback_says_so_in_its_parameters()
    {
        using var response = new InferenceResponse("small", "3", "id-9") { FallbackFor = "big" };
        var message = GrpcTensorCodec.Encode(response, raw: false);
        Assert.Equal(("small", "3", "id-9"), (message.ModelName, message.ModelVersion, message.Id));
        Assert.Equal("small/3", message.Parameters["served_by_model"].StringParam);
        Assert.Equal("big", message.Parameters["fallback_for"].StringParam);

        using var plain = new InferenceResponse("m", "1", "");
        Assert.Empty(GrpcTensorCodec.Encode(plain, raw: false).Parameters);
    }
}
