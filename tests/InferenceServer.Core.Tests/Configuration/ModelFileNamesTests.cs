using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;

namespace InferenceServer.Tests.Core.Configuration;

/// <summary>default_model_filename may name a file one folder down (a hub export's onnx/), never outside the version directory.</summary>
public sealed class ModelFileNamesTests
{
    [Theory]
    [InlineData("model.onnx")]
    [InlineData("decoder_model_merged.onnx")]
    [InlineData("onnx/model.onnx")]
    [InlineData("onnx/model_fp16.onnx")]
    [InlineData("onnx/model_quantized.onnx")]
    public void A_file_or_a_file_one_folder_down_is_accepted(string path) => Assert.True(ModelNames.IsValidModelFile(path));

    [Theory]
    [InlineData("")]
    [InlineData("/etc/passwd")]
    [InlineData("/model.onnx")]
    [InlineData("../x.onnx")]
    [InlineData("onnx/../../x.onnx")]
    [InlineData("onnx/..")]
    [InlineData("..")]
    [InlineData("a/b/model.onnx")]
    [InlineData("onnx\\model.onnx")]
    [InlineData("onnx/")]
    [InlineData("onnx//model.onnx")]
    [InlineData(".hidden/model.onnx")]
    public void Anything_that_could_leave_the_version_directory_is_refused(string path) => Assert.False(ModelNames.IsValidModelFile(path));

    [Fact]
    public void Onnx_backends_look_for_the_optimum_and_hub_names_in_order()
    {
        Assert.Equal(["model.onnx", "decoder_model_merged.onnx", "onnx/model.onnx", "onnx/decoder_model_merged.onnx"], OptimumModelFiles.For("model.onnx"));
        Assert.Equal(["model.pt"], OptimumModelFiles.For("model.pt"));
        Assert.All(OptimumModelFiles.Onnx, f => Assert.True(ModelNames.IsValidModelFile(f)));
    }
}
