using InferenceServer.Configuration;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Configuration;

public sealed class ModelConfigFileTests
{
    [Fact]
    public void Parses_every_key()
    {
        var file = ModelConfigFile.Parse("""
            name: m
            backend: onnxruntime
            max_batch_size: 4
            input:
              - name: a
                data_type: TYPE_FP32
                dims: [3, -1]
                optional: true
            output:
              - {name: b, data_type: FP16, dims: [2]}
            version_policy: {specific: {versions: [2, 5]}}
            default_model_filename: net.onnx
            device: cuda:1
            allow_cpu_fallback: true
            parameters: {intra_op_num_threads: "2"}
            """);
        Assert.Equal("m", file.Name);
        Assert.Equal(4, file.MaxBatchSize);
        var input = Assert.Single(ModelConfigFile.ResolveTensors(file.Input, "input"));
        Assert.Equal(new TensorConfig("a", DataType.Fp32, [3, -1], true), input with { Dims = input.Dims }, new TensorConfigComparer());
        Assert.Equal(DataType.Fp16, Assert.Single(ModelConfigFile.ResolveTensors(file.Output, "output")).DataType);
        Assert.Equal(VersionPolicy.Specific([2, 5]).Select([1, 2, 3, 5]), file.ResolveVersionPolicy().Select([1, 2, 3, 5]));
        Assert.Equal("cuda:1", file.Device);
        Assert.True(file.AllowCpuFallback);
        Assert.Equal("2", file.Parameters!["intra_op_num_threads"]);
    }

    [Fact]
    public void Json_is_accepted()
    {
        var file = ModelConfigFile.Parse("{\"max_batch_size\": 0, \"version_policy\": {\"latest\": {\"num_versions\": 2}}}");
        Assert.Equal(0, file.MaxBatchSize);
        Assert.Equal([4, 5], file.ResolveVersionPolicy().Select([1, 5, 4, 2]));
    }

    [Theory]
    [InlineData("max_batch_sise: 3", "max_batch_sise")]
    [InlineData("max_batch_size: [1", "line")]
    [InlineData("version_policy: {all: {}, latest: {num_versions: 1}}", "exactly one")]
    [InlineData("version_policy: {latest: {num_versions: 0}}", "at least 1")]
    [InlineData("version_policy: {specific: {versions: []}}", "positive")]
    [InlineData("input: [{name: a, data_type: TYPE_COMPLEX, dims: [1]}]", "data_type")]
    [InlineData("input: [{name: a, data_type: FP32}]", "dims")]
    [InlineData("input: [{data_type: FP32, dims: [1]}]", "name")]
    [InlineData("input: [{name: a, data_type: FP32, dims: [1]}, {name: a, data_type: FP32, dims: [1]}]", "twice")]
    public void Invalid_files_say_what_is_wrong(string yaml, string mentions)
    {
        var e = Assert.Throws<ModelConfigException>(() =>
        {
            var file = ModelConfigFile.Parse(yaml);
            file.ResolveVersionPolicy();
            ModelConfigFile.ResolveTensors(file.Input, "input");
        });
        Assert.Contains(mentions, e.Message);
    }

    private sealed class TensorConfigComparer : IEqualityComparer<TensorConfig>
    {
        public bool Equals(TensorConfig? x, TensorConfig? y) =>
            x is not null && y is not null && x.Name == y.Name && x.DataType == y.DataType && x.Dims.SequenceEqual(y.Dims) && x.Optional == y.Optional;

        public int GetHashCode(TensorConfig obj) => obj.Name.GetHashCode(StringComparison.Ordinal);
    }
}

public sealed class ModelNamesTests
{
    [Theory]
    [InlineData("simple", true)]
    [InlineData("resnet-50_v1.5", true)]
    [InlineData("", false)]
    [InlineData(".", false)]
    [InlineData("..", false)]
    [InlineData(".hidden", false)]
    [InlineData("a/b", false)]
    [InlineData("a\\b", false)]
    [InlineData("../etc", false)]
    [InlineData("a..b", false)]
    [InlineData("name with space", false)]
    public void Only_single_safe_path_segments_are_model_names(string name, bool valid) => Assert.Equal(valid, ModelNames.IsValid(name));
}

public sealed class DataTypesTests
{
    [Theory]
    [InlineData("FP32", DataType.Fp32)]
    [InlineData("TYPE_FP32", DataType.Fp32)]
    [InlineData("bytes", DataType.Bytes)]
    [InlineData("TYPE_STRING", DataType.Bytes)]
    [InlineData("BF16", DataType.Bf16)]
    [InlineData("UINT64", DataType.UInt64)]
    public void Protocol_and_config_names_parse(string text, DataType expected)
    {
        Assert.True(DataTypes.TryParse(text, out var type));
        Assert.Equal(expected, type);
    }

    [Theory]
    [InlineData("FLOAT")]
    [InlineData("INVALID")]
    [InlineData("TYPE_")]
    [InlineData("")]
    public void Unknown_names_do_not_parse(string text) => Assert.False(DataTypes.TryParse(text, out _));

    [Fact]
    public void Every_type_round_trips_its_name_and_has_the_protocol_size()
    {
        foreach (var type in DataTypes.All)
        {
            Assert.True(DataTypes.TryParse(type.Name(), out var parsed));
            Assert.Equal(type, parsed);
            Assert.True(DataTypes.TryParse(type.ConfigName(), out parsed));
            Assert.Equal(type, parsed);
        }
        Assert.Equal(14, DataTypes.All.Count);
        Assert.Equal(2, DataType.Bf16.ElementSize());
        Assert.Equal(0, DataType.Bytes.ElementSize());
    }
}

public sealed class TensorWriterTests
{
    [Fact]
    public void Grows_past_its_estimate_and_keeps_every_element()
    {
        using var writer = new TensorWriter(DataType.Bytes, 1);
        for (var i = 0; i < 1000; i++)
        {
            writer.WriteBytes(System.Text.Encoding.UTF8.GetBytes("element " + i));
        }
        using var buffer = writer.Detach();
        Assert.True(BytesElements.TryCount(buffer.Span, out var count));
        Assert.Equal(1000, count);
        ReadOnlySpan<byte> data = buffer.Span;
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal("element " + i, System.Text.Encoding.UTF8.GetString(BytesElements.ReadNext(ref data)));
        }
    }

    [Fact]
    public void Malformed_bytes_buffers_are_detected()
    {
        Assert.False(BytesElements.TryCount([5, 0, 0, 0, 1, 2], out _));
        Assert.False(BytesElements.TryCount([1, 0], out _));
        Assert.True(BytesElements.TryCount([], out var none));
        Assert.Equal(0, none);
    }
}
