using InferenceServer.Client;
using InferenceServer.Tests.Integration;

namespace InferenceServer.Tests.Client;

/// <summary>
/// Every datatype through the SDK's typed helpers and back, over gRPC, REST JSON and REST binary, against the identity
/// model of each datatype (input [2, 3] -> output [2, 3]).
/// </summary>
public sealed class ClientDatatypeTests(IdentityModelsFixture fixture) : IClassFixture<IdentityModelsFixture>
{
    public static TheoryData<string, ClientProtocol> Cases()
    {
        var data = new TheoryData<string, ClientProtocol>();
        foreach (var datatype in new[]
                 {
                     DataType.Bool, DataType.UInt8, DataType.UInt16, DataType.UInt32, DataType.UInt64, DataType.Int8, DataType.Int16,
                     DataType.Int32, DataType.Int64, DataType.Fp16, DataType.Bf16, DataType.Fp32, DataType.Fp64, DataType.Bytes,
                 })
        {
            foreach (var protocol in Enum.GetValues<ClientProtocol>())
            {
                data.Add(datatype, protocol);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_typed_tensor_round_trips_with_equal_values(string datatype, ClientProtocol protocol)
    {
        using var client = new TestClient(fixture.Server, protocol);
        var (input, check) = Sample(datatype);

        var result = await client.Client.InferAsync(new InferRequest(IdentityModelsFixture.ModelName(datatype), input) { Id = "rt-" + datatype });

        Assert.Equal("rt-" + datatype, result.Id);
        var output = result.Output("OUTPUT");
        Assert.Equal(datatype, output.Datatype);
        Assert.Equal([2L, 3L], output.Shape);
        check(output);
    }

    [Fact]
    public async Task In_auto_mode_a_tensor_over_the_threshold_goes_binary_and_a_small_one_as_JSON()
    {
        // 8 rows x 3 floats = 96 bytes: over a 64-byte threshold. 2 rows = 24 bytes: under it.
        var large = Enumerable.Range(0, 8 * 3).Select(i => i * 0.25f - 7).ToArray();
        var counter = new CountingHandler(new SocketsHttpHandler());
        using var client = new InferenceHttpClient(new HttpClient(counter) { BaseAddress = new Uri($"http://127.0.0.1:{fixture.Server.Endpoints.HttpPort}") },
            new InferenceClientOptions { BinaryThresholdBytes = 64 }, ownsHttpClient: true);

        var result = await client.InferAsync(new InferRequest("identity_fp32", Tensor.Create("INPUT", large, 8, 3)));
        Assert.Equal(1, counter.BinaryRequests);
        var small = await client.InferAsync(new InferRequest("identity_fp32", Tensor.Create("INPUT", large[..6], 2, 3)));

        Assert.Equal(1, counter.BinaryRequests);
        Assert.Equal(large, result.Output("OUTPUT").ToArray<float>());
        Assert.Equal(large[..6], small.Output("OUTPUT").ToArray<float>());
    }

    [Theory]
    [InlineData(ClientProtocol.RestJson, 0)]
    [InlineData(ClientProtocol.RestBinary, 1)]
    public async Task The_json_and_binary_modes_use_the_encoding_they_name(ClientProtocol protocol, int binaryRequests)
    {
        using var client = new TestClient(fixture.Server, protocol);

        await client.Client.InferAsync(new InferRequest("identity_int32", Tensor.Create("INPUT", new[] { 1, 2, 3 }, 1, 3)));

        Assert.Equal(binaryRequests, client.Counter.BinaryRequests);
    }

    private static (Tensor Input, Action<Tensor> Check) Sample(string datatype)
    {
        (Tensor, Action<Tensor>) Of<T>(T[] values) where T : unmanaged =>
            (Tensor.Create("INPUT", values, 2, 3), t => Assert.Equal(values, t.ToArray<T>()));
        return datatype switch
        {
            DataType.Bool => Of(new[] { true, false, true, false, false, true }),
            DataType.UInt8 => Of(new byte[] { 0, 1, 127, 128, 254, 255 }),
            DataType.UInt16 => Of(new ushort[] { 0, 1, 300, 32768, 65534, 65535 }),
            DataType.UInt32 => Of(new uint[] { 0, 1, 70000, 2147483648, 4294967294, uint.MaxValue }),
            DataType.UInt64 => Of(new ulong[] { 0, 1, 1UL << 53, (1UL << 53) + 1, ulong.MaxValue - 1, ulong.MaxValue }),
            DataType.Int8 => Of(new sbyte[] { sbyte.MinValue, -1, 0, 1, 126, sbyte.MaxValue }),
            DataType.Int16 => Of(new short[] { short.MinValue, -1, 0, 1, 12345, short.MaxValue }),
            DataType.Int32 => Of(new[] { int.MinValue, -1, 0, 1, 123456789, int.MaxValue }),
            DataType.Int64 => Of(new[] { long.MinValue, -1, 0, (1L << 53) + 1, 9007199254740993, long.MaxValue }),
            DataType.Fp16 => Of(new[] { (Half)0.5f, (Half)(-2.25f), Half.MaxValue, Half.MinValue, Half.Epsilon, (Half)1024f }),
            DataType.Bf16 => Of(new[]
            {
                BFloat16.FromSingle(1f), BFloat16.FromSingle(-2f), new BFloat16(0x7F7F), new BFloat16(0x0001), BFloat16.FromSingle(3.140625f), BFloat16.FromSingle(-0.5f),
            }),
            DataType.Fp32 => Of(new[] { 0.1f, -2.5f, float.MaxValue, float.Epsilon, 3.14159274f, float.NaN }),
            DataType.Fp64 => Of(new[] { 0.1, -2.5, double.MaxValue, double.Epsilon, Math.PI, double.NegativeInfinity }),
            DataType.Bytes => StringsSample(),
            _ => throw new ArgumentOutOfRangeException(nameof(datatype), datatype, null),
        };
    }

    private static (Tensor, Action<Tensor>) StringsSample()
    {
        string[] values = ["hello", "", "wörld ✓", "a\"quote", "tab\there", "last"];
        return (Tensor.FromStrings("INPUT", values, 2, 3), t => Assert.Equal(values, t.ToStrings()));
    }
}
