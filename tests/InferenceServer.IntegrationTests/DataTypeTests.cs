using System.Buffers.Binary;
using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>A repository of Identity models, one per datatype ("identity_fp32", ...), each [batch, 3] in and out.</summary>
public sealed class IdentityModelsFixture : IAsyncLifetime
{
    public static readonly TensorElementKind[] Kinds =
    [
        TensorElementKind.Bool, TensorElementKind.UInt8, TensorElementKind.UInt16, TensorElementKind.UInt32, TensorElementKind.UInt64,
        TensorElementKind.Int8, TensorElementKind.Int16, TensorElementKind.Int32, TensorElementKind.Int64,
        TensorElementKind.Float16, TensorElementKind.BFloat16, TensorElementKind.Float, TensorElementKind.Double, TensorElementKind.String,
    ];

    public RunningServer Server { get; private set; } = null!;

    public static string ModelName(string datatype) => "identity_" + datatype.ToLowerInvariant();

    public async Task InitializeAsync()
    {
        var repository = Paths.NewTempDirectory("identity-repo");
        foreach (var kind in Kinds)
        {
            new OnnxGraphBuilder("identity", opsetVersion: 21)
                .Input("INPUT", kind, "batch", 3)
                .Output("OUTPUT", kind, "batch", 3)
                .Node("Identity", ["INPUT"], ["OUTPUT"])
                .Save(Path.Combine(repository, ModelName(WireTensor.DatatypeOf(kind)), "1", "model.onnx"));
        }
        Server = await RunningServer.StartAsync(repository);
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class DataTypeTests(IdentityModelsFixture fixture) : IClassFixture<IdentityModelsFixture>
{
    public static TheoryData<string, TensorEncoding> Cases()
    {
        var data = new TheoryData<string, TensorEncoding>();
        foreach (var kind in IdentityModelsFixture.Kinds)
        {
            var datatype = WireTensor.DatatypeOf(kind);
            foreach (var encoding in Enum.GetValues<TensorEncoding>())
            {
                if (InferClient.Supports(encoding, datatype))
                {
                    data.Add(datatype, encoding);
                }
            }
        }
        return data;
    }

    [Fact]
    public async Task Every_identity_model_is_ready()
    {
        Assert.True(fixture.Server.Repository.IsServerReady, string.Join("\n", fixture.Server.Repository.Index(false).Select(r => $"{r.Name}: {r.State} {r.Reason}")));
        var response = await fixture.Server.Http.GetAsync("/v2/health/ready");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Datatype_round_trips(string datatype, TensorEncoding encoding)
    {
        var input = SampleValues(datatype);
        var outputs = await InferClient.InferAsync(fixture.Server, encoding, IdentityModelsFixture.ModelName(datatype), [input]);
        var output = Assert.Single(outputs);
        Assert.Equal("OUTPUT", output.Name);
        Assert.Equal(datatype, output.Datatype);
        Assert.Equal(input.Shape, output.Shape);
        Assert.Equal(input.Data, output.Data);
    }

    /// <summary>Two rows of three values per type, including each type's extremes (and for floats signed zero and fractions).</summary>
    private static WireTensor SampleValues(string datatype)
    {
        var bytes = new List<byte>();
        void Add(Span<byte> s) => bytes.AddRange(s.ToArray());
        Span<byte> b = stackalloc byte[8];
        switch (datatype)
        {
            case "BOOL": bytes.AddRange([1, 0, 1, 0, 0, 1]); break;
            case "UINT8": bytes.AddRange([0, 1, 127, 128, 254, 255]); break;
            case "INT8": bytes.AddRange([0x80, 0xFF, 0, 1, 0x7E, 0x7F]); break;
            case "UINT16": foreach (var v in new ushort[] { 0, 1, 300, 32768, 65534, 65535 }) { BinaryPrimitives.WriteUInt16LittleEndian(b, v); Add(b[..2]); } break;
            case "INT16": foreach (var v in new short[] { short.MinValue, -1, 0, 1, 12345, short.MaxValue }) { BinaryPrimitives.WriteInt16LittleEndian(b, v); Add(b[..2]); } break;
            case "UINT32": foreach (var v in new uint[] { 0, 1, 70000, 2147483648, 4294967294, uint.MaxValue }) { BinaryPrimitives.WriteUInt32LittleEndian(b, v); Add(b[..4]); } break;
            case "INT32": foreach (var v in new[] { int.MinValue, -1, 0, 1, 123456789, int.MaxValue }) { BinaryPrimitives.WriteInt32LittleEndian(b, v); Add(b[..4]); } break;
            case "UINT64": foreach (var v in new ulong[] { 0, 1, 1UL << 53, (1UL << 53) + 1, ulong.MaxValue - 1, ulong.MaxValue }) { BinaryPrimitives.WriteUInt64LittleEndian(b, v); Add(b[..8]); } break;
            case "INT64": foreach (var v in new[] { long.MinValue, -1, 0, (1L << 53) + 1, 9007199254740993, long.MaxValue }) { BinaryPrimitives.WriteInt64LittleEndian(b, v); Add(b[..8]); } break;
            case "FP16": foreach (var v in new[] { (Half)0.5f, (Half)(-2.25f), Half.MaxValue, Half.MinValue, Half.Epsilon, (Half)1024f }) { BinaryPrimitives.WriteHalfLittleEndian(b, v); Add(b[..2]); } break;
            case "BF16": foreach (ushort v in new ushort[] { 0x3F80, 0xC000, 0x7F7F, 0x0001, 0x4049, 0xBF00 }) { BinaryPrimitives.WriteUInt16LittleEndian(b, v); Add(b[..2]); } break;
            case "FP32": foreach (var v in new[] { 0.1f, -2.5f, float.MaxValue, float.Epsilon, 3.14159274f, -0.0f }) { BinaryPrimitives.WriteSingleLittleEndian(b, v); Add(b[..4]); } break;
            case "FP64": foreach (var v in new[] { 0.1, -2.5, double.MaxValue, double.Epsilon, Math.PI, 1e-300 }) { BinaryPrimitives.WriteDoubleLittleEndian(b, v); Add(b[..8]); } break;
            case "BYTES": return new WireTensor("INPUT", datatype, [2, 3], WireTensor.EncodeStrings("hello", "", "wörld ✓", "a\"quote", "tab\there", "last"));
        }
        return new WireTensor("INPUT", datatype, [2, 3], bytes.ToArray());
    }
}
