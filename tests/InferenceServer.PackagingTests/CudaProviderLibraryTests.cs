using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Tests.Packaging;

namespace InferenceServer.Tests.Core.Backends;

/// <summary>
/// The reason a model on <c>cuda:N</c> gives when ONNX Runtime's CUDA provider cannot load: the provider of the cuda
/// flavor's package (restored by CudaBaseTests), loaded on this machine, which has no CUDA libraries.
/// </summary>
public sealed class CudaProviderLibraryTests
{
    [Fact]
    public async Task The_loaders_reason_names_the_first_missing_cuda_library()
    {
        var provider = await CudaBaseTests.CudaProviderAsync();
        var reason = CudaProviderLibrary.LoadError(provider);
        Assert.NotNull(reason);
        // The provider's first NEEDED entry that this machine lacks (no CUDA here), in the loader's own words.
        var firstMissing = ElfDependencies.Needed(provider).First(n => n.StartsWith("libcu", StringComparison.Ordinal));
        Assert.Equal($"{firstMissing}: cannot open shared object file: No such file or directory", reason);
    }

    [Fact]
    public void A_library_that_loads_has_no_reason()
    {
        var library = Directory.EnumerateFiles(AppContext.BaseDirectory, "libonnxruntime.so", SearchOption.AllDirectories).First();
        Assert.Null(CudaProviderLibrary.LoadError(library));
    }
}
