using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// The CUDA image's base matched to ONNX Runtime's CUDA provider by test, not by hand. The cuda flavor of ONNX Runtime's
/// backend (<c>-p:Accelerator=cuda</c>) is restored here into a private folder; the libraries its CUDA provider links (the ELF
/// NEEDED entries of <c>libonnxruntime_providers_cuda.so</c>) and those ONNX Runtime loads at run time (cuDNN 9 and the
/// NVRTC of its CUDA major) must all come from the CUDA and cuDNN majors of Dockerfile.cuda's <c>nvidia/cuda</c> base,
/// from the NVIDIA driver, or from Ubuntu itself.
/// </summary>
public sealed class CudaBaseTests
{
    private const string OrtGpuPackage = "Microsoft.ML.OnnxRuntime.Gpu.Linux";

    /// <summary>The cuDNN major ONNX Runtime's GPU packages are built for (onnxruntime.ai, CUDA Execution Provider,
    /// Requirements: cuDNN 9.x for its CUDA 12.x and 13.x builds); cuDNN is loaded with dlopen, so NEEDED does not show it.</summary>
    private const int OrtCudnnMajor = 9;

    private static readonly Lazy<Task<Restored>> CudaFlavor = new(RestoreCudaFlavorAsync);

    /// <summary>Linked from Ubuntu 24.04 itself (glibc, the C++ runtime).</summary>
    private static readonly HashSet<string> FromTheDistribution = new(StringComparer.Ordinal)
    {
        "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
    };

    /// <summary>The user-space driver library, which the NVIDIA Container Toolkit mounts from the host (<c>--gpus</c>).</summary>
    private static readonly HashSet<string> FromTheDriver = new(StringComparer.Ordinal) { "libcuda.so.1" };

    [Fact]
    public async Task The_cuda_flavor_of_onnx_runtimes_backend_restores_here()
    {
        var restored = await CudaFlavor.Value;
        Assert.Contains($"{OrtGpuPackage}/{BuildSwitchTests.CentralVersion(OrtGpuPackage)}", restored.Libraries);
        Assert.DoesNotContain(restored.Libraries, l => l.StartsWith("Microsoft.ML.OnnxRuntime/", StringComparison.Ordinal));
        Assert.True(File.Exists(restored.CudaProvider), restored.CudaProvider);
    }

    [Fact]
    public async Task The_cuda_base_provides_every_library_onnx_runtimes_cuda_provider_links_and_loads()
    {
        var provider = (await CudaFlavor.Value).CudaProvider;
        var needed = ElfDependencies.Needed(provider);
        var cudart = needed.Select(n => Regex.Match(n, @"^libcudart\.so\.(\d+)$")).SingleOrDefault(m => m.Success);
        Assert.True(cudart is not null, $"{provider} links no libcudart.so.N: {string.Join(", ", needed)}");
        var providerCudaMajor = int.Parse(cudart.Groups[1].Value, CultureInfo.InvariantCulture);

        // Loaded at run time by name: cuDNN (documented) and NVRTC of the provider's CUDA major (its name is in the binary).
        var nvrtc = $"libnvrtc.so.{providerCudaMajor}";
        Assert.True(Contains(File.ReadAllBytes(provider), Encoding.ASCII.GetBytes(nvrtc)), $"{provider} does not name {nvrtc}");
        var required = needed.Concat([$"libcudnn.so.{OrtCudnnMajor}", nvrtc]).ToList();

        var (cudaMajor, cudnnMajor) = CudaBase();
        var provided = CudaRuntimeLibraries(cudaMajor)
            .Concat(cudnnMajor is { } m ? [$"libcudnn.so.{m}"] : [])
            .Concat(FromTheDriver)
            .Concat(FromTheDistribution)
            .ToHashSet(StringComparer.Ordinal);
        var missing = required.Where(r => !provided.Contains(r)).ToList();
        Assert.True(missing.Count == 0,
            $"{DockerfileTests.CudaBaseImage} (CUDA {cudaMajor}, cuDNN {cudnnMajor?.ToString(CultureInfo.InvariantCulture) ?? "none"}) does not provide " +
            $"{string.Join(", ", missing)}, which ONNX Runtime's CUDA provider (a CUDA {providerCudaMajor} build) needs; " +
            "choose an nvidia/cuda:X.Y.Z-cudnn-runtime-ubuntu24.04 base of its CUDA major");
    }

    [Fact]
    public void The_elf_reader_reads_the_needed_entries_objdump_reads()
    {
        // ONNX Runtime's CPU library of the test's own build, read by objdump (binutils, installed with gcc by .ci/run).
        var library = Directory.EnumerateFiles(AppContext.BaseDirectory, "libonnxruntime.so", SearchOption.AllDirectories).First();
        // The child runs with the system's C runtime, not the test host's private one (LibStdCxxCompat).
        var start = Backends.TorchSharp.LibStdCxxCompat.ChildProcess("objdump", $"-p \"{library}\"");
        start.RedirectStandardOutput = true;
        start.UseShellExecute = false;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var expected = Regex.Matches(output, @"^\s*NEEDED\s+(\S+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("libc.so.6", expected);
        Assert.Equal(expected, ElfDependencies.Needed(library));
        Assert.Throws<InvalidDataException>(() => ElfDependencies.Needed(Path.Combine(Paths.RepositoryRoot, "Dockerfile.cuda")));
    }

    [Fact]
    public void The_docs_name_the_cuda_base_its_driver_and_the_gpus_it_drops()
    {
        var docs = File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "docs", "docker.md"));
        var (cudaMajor, _) = CudaBase();
        Assert.Contains(DockerfileTests.CudaBaseImage, docs, StringComparison.Ordinal);
        Assert.Contains($"CUDA {cudaMajor}", docs, StringComparison.Ordinal);
        if (cudaMajor == 13)
        {
            Assert.Contains("580", docs, StringComparison.Ordinal);              // the driver CUDA 13 needs
            Assert.Contains("compute capability 7.5", docs, StringComparison.Ordinal); // Maxwell, Pascal and Volta are gone
        }
    }

    /// <summary>The CUDA and cuDNN majors of Dockerfile.cuda's base, from its tag
    /// (<c>nvidia/cuda:X.Y.Z-cudnn-runtime-ubuntu24.04</c>: the runtime with cuDNN 9, as NVIDIA tags CUDA 12.4 and later).</summary>
    private static (int Cuda, int? Cudnn) CudaBase()
    {
        var tag = Regex.Match(DockerfileTests.CudaBaseImage, @"^nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(?:(cudnn)(\d*)-)?runtime-ubuntu24\.04$");
        Assert.True(tag.Success, $"{DockerfileTests.CudaBaseImage}: expected nvidia/cuda:X.Y.Z-cudnn-runtime-ubuntu24.04");
        var cuda = int.Parse(tag.Groups[1].Value, CultureInfo.InvariantCulture);
        int? cudnn = !tag.Groups[4].Success ? null : tag.Groups[5].Value.Length > 0 ? int.Parse(tag.Groups[5].Value, CultureInfo.InvariantCulture) : 9;
        return (cuda, cudnn);
    }

    /// <summary>The sonames NVIDIA's <c>runtime</c> images carry for a CUDA major (the cuda-libraries packages: runtime,
    /// cuBLAS, cuRAND, cuFFT, cuSPARSE, cuSOLVER, NVRTC, nvJitLink), from the CUDA Toolkit's release notes.</summary>
    private static IEnumerable<string> CudaRuntimeLibraries(int major) => major switch
    {
        12 => ["libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12", "libcurand.so.10", "libcufft.so.11", "libcusparse.so.12",
               "libcusolver.so.11", "libnvrtc.so.12", "libnvJitLink.so.12"],
        13 => ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12", "libcusparse.so.12",
               "libcusolver.so.12", "libnvrtc.so.13", "libnvJitLink.so.13"],
        _ => throw new Xunit.Sdk.XunitException($"the test does not know the libraries of nvidia/cuda:{major}.x runtime images; add them"),
    };

    /// <summary>ONNX Runtime's CUDA provider of the cuda flavor's package (restored once per test run).</summary>
    internal static async Task<string> CudaProviderAsync() => (await CudaFlavor.Value).CudaProvider;

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    private sealed record Restored(IReadOnlyList<string> Libraries, string CudaProvider);

    /// <summary>Restores ONNX Runtime's backend with <c>-p:Accelerator=cuda</c> into a private obj folder (the build's
    /// own restore of the cpu flavor is left alone) and reads what it resolved from project.assets.json.</summary>
    private static async Task<Restored> RestoreCudaFlavorAsync()
    {
        var obj = Paths.NewTempDirectory("cuda-restore") + "/";
        // ONNX Runtime's backend alone (--no-dependencies: Core's own restore is left alone too).
        var start = new ProcessStartInfo("dotnet", ["restore", BuildSwitchTests.OnnxRuntimeProject, "--no-dependencies", "-p:Accelerator=cuda", $"-p:BaseIntermediateOutputPath={obj}", "--nologo", "-v", "quiet"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Paths.RepositoryRoot,
        };
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10)))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("dotnet restore -p:Accelerator=cuda did not finish in 10 minutes");
            }
        }
        Assert.True(process.ExitCode == 0, $"dotnet restore -p:Accelerator=cuda failed:\n{await stdout}{await stderr}");

        using var assets = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(obj, "project.assets.json")));
        var root = assets.RootElement;
        var packages = root.GetProperty("packageFolders").EnumerateObject().First().Name;
        var libraries = root.GetProperty("libraries").EnumerateObject().ToList();
        var ort = libraries.Single(l => l.Name.StartsWith(OrtGpuPackage + "/", StringComparison.Ordinal));
        var provider = Path.Combine(packages, ort.Value.GetProperty("path").GetString()!, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so");
        return new Restored(libraries.Select(l => l.Name).ToList(), provider);
    }
}
