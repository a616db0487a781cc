using Google.Protobuf;
using InferenceServer.Client;
using Wire = InferenceServer.Client.Grpc;

namespace InferenceServer.Tests.Client;

/// <summary>
/// Outputs in gRPC typed contents, the form Triton (and this server) answer with when a request used typed contents:
/// the gRPC client reads them as it reads raw contents.
/// </summary>
public sealed class ClientTypedContentsTests
{
    [Fact]
    public void Typed_contents_of_every_typed_field_become_the_same_tensors_as_raw_contents()
    {
        var response = new Wire.ModelInferResponse { ModelName = "m", ModelVersion = "3", Id = "typed" };
        void Add(string name, string datatype, Wire.InferTensorContents contents, params long[] shape)
        {
            var output = new Wire.ModelInferResponse.Types.InferOutputTensor { Name = name, Datatype = datatype, Contents = contents };
            output.Shape.AddRange(shape);
            response.Outputs.Add(output);
        }
        Add("b", DataType.Bool, new() { BoolContents = { true, false, true } }, 3);
        Add("i8", DataType.Int8, new() { IntContents = { -128, 0, 127 } }, 3);
        Add("u16", DataType.UInt16, new() { UintContents = { 0, 1, 65535 } }, 1, 3);
        Add("i64", DataType.Int64, new() { Int64Contents = { long.MinValue, 0, long.MaxValue } }, 3);
        Add("u64", DataType.UInt64, new() { Uint64Contents = { ulong.MaxValue } }, 1);
        Add("f32", DataType.Fp32, new() { Fp32Contents = { 0.5f, -1.25f } }, 2);
        Add("f64", DataType.Fp64, new() { Fp64Contents = { Math.PI } }, 1);
        Add("s", DataType.Bytes, new() { BytesContents = { ByteString.CopyFromUtf8("héllo"), ByteString.Empty } }, 2);

        var result = InferenceGrpcClient.ToResult(response);

        Assert.Equal(("m", "3", "typed"), (result.ModelName, result.ModelVersion, result.Id));
        Assert.Equal([true, false, true], result.Output("b").ToArray<bool>());
        Assert.Equal([(sbyte)-128, (sbyte)0, (sbyte)127], result.Output("i8").ToArray<sbyte>());
        Assert.Equal([(ushort)0, (ushort)1, (ushort)65535], result.Output("u16").ToArray<ushort>());
        Assert.Equal([1L, 3L], result.Output("u16").Shape);
        Assert.Equal([long.MinValue, 0, long.MaxValue], result.Output("i64").ToArray<long>());
        Assert.Equal([ulong.MaxValue], result.Output("u64").ToArray<ulong>());
        Assert.Equal([0.5f, -1.25f], result.Output("f32").ToArray<float>());
        Assert.Equal([Math.PI], result.Output("f64").ToArray<double>());
        Assert.Equal(["héllo", ""], result.Output("s").ToStrings());
    }

    [Fact]
    public void Typed_contents_that_do_not_fill_the_shape_are_refused_with_the_output_named()
    {
        var response = new Wire.ModelInferResponse { ModelName = "m", ModelVersion = "1" };
        var output = new Wire.ModelInferResponse.Types.InferOutputTensor
        {
            Name = "short", Datatype = DataType.Int32, Contents = new() { IntContents = { 1, 2 } },
        };
        output.Shape.Add(3);
        response.Outputs.Add(output);

        var e = Assert.Throws<ArgumentException>(() => InferenceGrpcClient.ToResult(response));

        Assert.Contains("'short'", e.Message);
        Assert.Contains("needs 12 bytes of data but has 8", e.Message);
    }
}
