using InferenceServer.Configuration;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Configuration;

public sealed class ConfiguredModelTests
{
    private static ConfigLayer Layer(string source, string yaml) => new(source, ModelConfigFile.Parse(yaml, source));

    [Fact]
    public void A_higher_source_wins_key_by_key_and_each_key_remembers_its_source()
    {
        var merged = ConfiguredModel.Merge(
        [
            Layer("config.yaml", "max_batch_size: 4\nparameters: {intra_op_num_threads: \"1\"}\n"),
            Layer("config.json", "{\"max_batch_size\": 16, \"device\": \"cuda:1\", \"parameters\": {\"other\": \"x\"}}"),
        ]);
        Assert.Equal(4, merged.Values.MaxBatchSize);
        Assert.Equal("cuda:1", merged.Values.Device);
        // A map is one value: the higher source's whole map, not a union.
        Assert.Equal(["intra_op_num_threads"], merged.Values.Parameters!.Keys);
        Assert.Equal("config.yaml", merged.OriginOf("max_batch_size"));
        Assert.Equal("config.json", merged.OriginOf("device"));
        Assert.Equal("config.yaml", merged.OriginOf("parameters"));
        Assert.Null(merged.OriginOf("version_policy"));
        Assert.Null(merged.Values.VersionPolicy);
    }

    [Fact]
    public void Declared_tensors_merge_by_name()
    {
        var merged = ConfiguredModel.Merge(
        [
            Layer("config.yaml", "input: [{name: a, data_type: TYPE_FP32, dims: [3]}]\n"),
            Layer("config.json", "{\"input\": [{\"name\": \"a\", \"data_type\": \"TYPE_FP16\", \"dims\": [3]}, {\"name\": \"b\", \"data_type\": \"TYPE_INT64\", \"dims\": [1]}]}"),
        ]);
        var inputs = merged.Values.Input!;
        Assert.Equal(["a", "b"], inputs.Select(t => t.Name));
        Assert.Equal("TYPE_FP32", inputs[0].DataType);
        Assert.Equal("config.yaml", merged.OriginOf("input.a"));
        Assert.Equal("config.json", merged.OriginOf("input.b"));
    }

    [Fact]
    public void Read_takes_the_first_configuration_file_and_names_it()
    {
        var directory = Paths.NewTempDirectory("configured-model");
        File.WriteAllText(Path.Combine(directory, "config.json"), "{\"max_batch_size\": 2}");
        var fromJson = ConfiguredModel.Read(directory);
        Assert.Equal(2, fromJson.Values.MaxBatchSize);
        Assert.Equal("config.json", fromJson.OriginOf("max_batch_size"));

        File.WriteAllText(Path.Combine(directory, "config.yaml"), "max_batch_size: 3\n");
        var fromYaml = ConfiguredModel.Read(directory);
        Assert.Equal(3, fromYaml.Values.MaxBatchSize);
        Assert.Equal("config.yaml", fromYaml.OriginOf("max_batch_size"));
    }

    [Fact]
    public void A_directory_without_configuration_sets_nothing()
    {
        var configured = ConfiguredModel.Read(Paths.NewTempDirectory("configured-none"));
        Assert.Empty(configured.Origins);
        Assert.Null(configured.Values.MaxBatchSize);
    }

    [Fact]
    public void An_invalid_file_names_itself()
    {
        var directory = Paths.NewTempDirectory("configured-bad");
        File.WriteAllText(Path.Combine(directory, "config.yml"), "max_batch_sise: 2\n");
        var e = Assert.Throws<ModelConfigException>(() => { ConfiguredModel.Read(directory); });
        Assert.StartsWith("config.yml:", e.Message);
        Assert.Contains("max_batch_sise", e.Message);
    }
}
