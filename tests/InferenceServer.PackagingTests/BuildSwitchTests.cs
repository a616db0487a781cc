using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Xml.Linq;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// The build switch <c>-p:Accelerator=cpu|cuda</c> in InferenceServer.Backends.OnnxRuntime.csproj, by MSBuild evaluation
/// of the engines' projects: each flavor's engine packages, the default, and the error for a value that is neither.
/// CudaBaseTests restores the cuda flavor.
/// </summary>
public sealed class BuildSwitchTests
{
    /// <summary>The project of ONNX Runtime's backend, which holds the switch.</summary>
    internal static readonly string OnnxRuntimeProject = Path.Combine(Paths.RepositoryRoot, "server", "InferenceServer.Backends.OnnxRuntime", "InferenceServer.Backends.OnnxRuntime.csproj");

    /// <summary>The engines' projects: their package references are the flavor's native packages.</summary>
    private static readonly string[] EngineProjects =
    [
        OnnxRuntimeProject,
        Path.Combine(Paths.RepositoryRoot, "server", "InferenceServer.Backends.TorchSharp", "InferenceServer.Backends.TorchSharp.csproj"),
    ];
    private static readonly ConcurrentDictionary<string, Lazy<Task<IReadOnlyList<string>>>> Evaluated = new(StringComparer.Ordinal);

    private static readonly string[] CpuEngines = ["Microsoft.ML.OnnxRuntime"];
    private static readonly string[] CudaEngines = ["Microsoft.ML.OnnxRuntime.Gpu.Linux"];

    /// <summary>libtorch is the CPU build in both flavors (Dockerfile.cuda and docs/docker.md say why).</summary>
    private const string Libtorch = "libtorch-cpu-linux-x64";

    [Fact]
    public async Task The_default_is_the_cpu_flavor()
    {
        var packages = await PackageReferencesAsync(null);
        Assert.Equal(packages, await PackageReferencesAsync("cpu"));
        Assert.All(CpuEngines, p => Assert.Contains(p, packages));
        Assert.All(CudaEngines, p => Assert.DoesNotContain(p, packages));
        Assert.Contains(Libtorch, packages);
    }

    [Fact]
    public async Task Accelerator_cuda_swaps_onnx_runtime_for_its_cuda_build_and_nothing_else()
    {
        var cpu = await PackageReferencesAsync("cpu");
        var cuda = await PackageReferencesAsync("cuda");
        Assert.All(CudaEngines, p => Assert.Contains(p, cuda));
        Assert.All(CpuEngines, p => Assert.DoesNotContain(p, cuda));
        Assert.Equal(cpu.Except(CpuEngines).Order(StringComparer.Ordinal), cuda.Except(CudaEngines).Order(StringComparer.Ordinal));
        Assert.Contains(Libtorch, cuda);
        Assert.DoesNotContain(cuda, p => p.StartsWith("libtorch-cuda", StringComparison.Ordinal));
        // Every engine package has a central version; ONNX Runtime's two flavors the same one.
        foreach (var package in CpuEngines.Concat(CudaEngines).Append(Libtorch))
        {
            Assert.False(string.IsNullOrEmpty(CentralVersion(package)), $"Directory.Packages.props has no version for {package}");
        }
        Assert.Equal(CentralVersion("Microsoft.ML.OnnxRuntime"), CentralVersion("Microsoft.ML.OnnxRuntime.Gpu.Linux"));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA12")]
    public async Task An_unknown_accelerator_fails_the_build_with_a_clear_error(string value)
    {
        var (code, output) = await MsBuildAsync(OnnxRuntimeProject, ["-t:CheckAccelerator", $"-p:Accelerator={value}"]);
        Assert.NotEqual(0, code);
        Assert.Contains($"Accelerator '{value}' is not known: use -p:Accelerator=cpu (the default) or -p:Accelerator=cuda.", output, StringComparison.Ordinal);
        var (ok, okOutput) = await MsBuildAsync(OnnxRuntimeProject, ["-t:CheckAccelerator", "-p:Accelerator=cuda"]);
        Assert.True(ok == 0, okOutput);
    }

    [Fact]
    public void The_old_property_name_is_gone()
    {
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Paths.RepositoryRoot, "server"), "*.csproj", SearchOption.AllDirectories)
            .Append(Path.Combine(Paths.RepositoryRoot, "README.md"))
            .Append(Path.Combine(Paths.RepositoryRoot, "Dockerfile.cuda")))
        {
            Assert.DoesNotContain("InferenceDevice", File.ReadAllText(file), StringComparison.Ordinal);
        }
    }

    /// <summary>The PackageReference items of InferenceServer.Core for an Accelerator value (null: not set).</summary>
    internal static Task<IReadOnlyList<string>> PackageReferencesAsync(string? accelerator) =>
        Evaluated.GetOrAdd(accelerator ?? "", key => new Lazy<Task<IReadOnlyList<string>>>(() => EvaluateAsync(key))).Value;

    private static async Task<IReadOnlyList<string>> EvaluateAsync(string accelerator)
    {
        var packages = new List<string>();
        foreach (var project in EngineProjects)
        {
            var (code, output) = await MsBuildAsync(project, accelerator.Length == 0 ? ["-getItem:PackageReference"] : ["-getItem:PackageReference", $"-p:Accelerator={accelerator}"]);
            Assert.True(code == 0, output);
            using var json = JsonDocument.Parse(output);
            packages.AddRange(json.RootElement.GetProperty("Items").GetProperty("PackageReference").EnumerateArray()
                .Select(i => i.GetProperty("Identity").GetString()!));
        }
        return packages;
    }

    /// <summary>A package's version in Directory.Packages.props (null when it has none).</summary>
    internal static string? CentralVersion(string package) =>
        XDocument.Load(Path.Combine(Paths.RepositoryRoot, "Directory.Packages.props")).Descendants("PackageVersion")
            .Where(p => (string?)p.Attribute("Include") == package)
            .Select(p => (string?)p.Attribute("Version"))
            .SingleOrDefault();

    /// <summary>Runs <c>dotnet msbuild</c> on a project (evaluation or one target; no restore).</summary>
    private static async Task<(int Code, string Output)> MsBuildAsync(string project, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("dotnet", ["msbuild", project, "-nologo", .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Paths.RepositoryRoot,
        };
        // A private build node per call: no node reuse across test processes.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet msbuild {string.Join(' ', arguments)} did not finish in 3 minutes");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
