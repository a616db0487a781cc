using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using InferenceServer.Backends.TorchSharp;
using InferenceServer.Hosting;
using InferenceServer.Tests.Deployment;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// Dockerfile.cuda checked without a Docker engine: parsed, then held against the server (its default ports, flags,
/// environment variables, host assembly and health endpoint, the last one on a running server), the build switch, the
/// Kubernetes manifests (user, ports, model paths, image tags) and the repository (what the build copies exists and is
/// in the context). Both flavors: the default (cuda) and <c>--build-arg ACCELERATOR=cpu</c>.
/// </summary>
public sealed class DockerfileTests
{
    private static readonly string DockerfilePath = Path.Combine(Paths.RepositoryRoot, "Dockerfile.cuda");
    private static readonly Dockerfile File = Dockerfile.Load(DockerfilePath);

    /// <summary>The values of the build switch (<c>-p:Accelerator</c>, BuildSwitchTests), one image flavor each.</summary>
    public static TheoryData<string> Accelerators => new() { "cpu", "cuda" };

    private static DockerImage Image(string accelerator) => File.For(new Dictionary<string, string> { ["ACCELERATOR"] = accelerator });

    private static DockerStage BuildStage => File.Stage("build");

    [Fact]
    public void The_default_build_is_the_cuda_image_and_each_accelerator_has_its_runtime_stage()
    {
        Assert.Equal("cuda", File.GlobalArgDefaults["ACCELERATOR"]);
        Assert.Equal("runtime-${ACCELERATOR}", File.Stages[^1].From);
        Assert.StartsWith("nvidia/cuda:", File.For(new Dictionary<string, string>()).BaseImage, StringComparison.Ordinal);
        foreach (var accelerator in new[] { "cpu", "cuda" })
        {
            Assert.Contains(Image(accelerator).Chain, s => s.Name == $"runtime-{accelerator}");
        }
        Assert.Equal("ubuntu:24.04", Image("cpu").BaseImage);
    }

    [Fact]
    public void Every_base_image_is_pinned_and_the_build_and_runtime_are_ubuntu_24_04()
    {
        var stageNames = File.Stages.Select(s => s.Name).OfType<string>().ToHashSet(StringComparer.OrdinalIgnoreCase);
        var external = new[] { "cpu", "cuda" }
            .SelectMany(a => File.Stages.Select(s => Dockerfile.Expand(s.From, File.For(new Dictionary<string, string> { ["ACCELERATOR"] = a }).Args)))
            .Where(image => !stageNames.Contains(image))
            .Distinct()
            .ToList();
        Assert.NotEmpty(external);
        foreach (var image in external)
        {
            var colon = image.LastIndexOf(':');
            Assert.True(colon > image.LastIndexOf('/') && colon < image.Length - 1, $"{image}: no tag; pin one");
            var tag = image[(colon + 1)..];
            Assert.False(tag == "latest" || tag.Contains("latest", StringComparison.Ordinal), $"{image}: 'latest' is not a pin");
            Assert.False(tag.All(c => char.IsDigit(c) || c == '.') && tag.Count(c => c == '.') == 0, $"{image}: a major-only tag moves under you");
        }
        foreach (var stage in File.Stages.Where(s => s.Name is "build" or "aspnet"))
        {
            Assert.EndsWith("-noble", stage.From, StringComparison.Ordinal);
        }
        foreach (var accelerator in new[] { "cpu", "cuda" })
        {
            var image = Image(accelerator).BaseImage;
            Assert.True(image == "ubuntu:24.04" || image.EndsWith("-ubuntu24.04", StringComparison.Ordinal),
                $"{accelerator}: the runtime base {image} is not Ubuntu 24.04, whose libstdc++ TorchSharp's shim needs");
        }
        // The .NET runtime comes from the aspnet image of the same .NET version as the SDK that built the server.
        Assert.Contains(Image("cpu").Copies, c => c.Flags.GetValueOrDefault("from") == "aspnet" && c.Words.SequenceEqual(["/usr/share/dotnet", "/usr/share/dotnet"]));
        Assert.Equal(Tag(File.Stage("build").From).Split('-')[0], Tag(File.Stage("aspnet").From).Split('-')[0]);
    }

    /// <summary>The CUDA image's base (the runtime stage of the default build); CudaBaseTests matches it to ONNX Runtime's
    /// CUDA provider.</summary>
    internal static string CudaBaseImage => Image("cuda").BaseImage;

    [Fact]
    public void The_dockerfile_needs_no_registry_but_its_bases_and_names_no_package_of_one_distribution_only()
    {
        // A syntax directive makes BuildKit pull its frontend image from a registry before anything else.
        Assert.DoesNotMatch(@"(?im)^\s*#\s*syntax\s*=", System.IO.File.ReadAllText(DockerfilePath));
        // Package names that carry an ABI version differ between Ubuntu 24.04 and Debian 13 (the CI's stand-in base):
        // ICU and OpenSSL are looked up by pattern in the final stage.
        var install = Image("cpu").Chain.SelectMany(s => s.All("RUN")).Single(r => r.Body.Contains("apt-get install", StringComparison.Ordinal)).Body;
        Assert.DoesNotMatch(@"\blibicu\d", install);
        Assert.DoesNotMatch(@"\blibssl3t64\b", install);
        Assert.Contains("apt-cache pkgnames libicu", install, StringComparison.Ordinal);
        Assert.Contains("apt-cache pkgnames libssl3", install, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cuda_image_runs_onnx_runtime_on_cuda_and_libtorch_on_the_cpu()
    {
        Assert.Matches(@"^nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu24\.04$", CudaBaseImage);
        var cuda = await BuildSwitchTests.PackageReferencesAsync("cuda");
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu.Linux", cuda);
        Assert.Contains("libtorch-cpu-linux-x64", cuda);
        Assert.DoesNotContain(cuda, p => p.StartsWith("libtorch-cuda", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Accelerators))]
    public void The_image_runs_as_the_non_root_user_of_the_kubernetes_manifests(string accelerator)
    {
        var user = Image(accelerator).User;
        Assert.NotNull(user);
        var match = Regex.Match(user, @"^(\d+)(?::(\d+))?$");
        Assert.True(match.Success, $"USER {user}: use numeric ids, so runAsNonRoot can verify them without /etc/passwd");
        var uid = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.NotEqual(0, uid);
        var contexts = KubernetesManifestTests.ServerDeployments(accelerator == "cuda" ? "gpu" : "cpu")
            .SelectMany(d => new[] { d.Spec["template"]!["spec"]!["securityContext"] }
                .Concat(Containers(d).Select(c => c["securityContext"])))
            .OfType<JsonObject>()
            .ToList();
        Assert.NotEmpty(contexts);
        foreach (var context in contexts.Where(c => c["runAsUser"] is not null))
        {
            Assert.Equal(uid, (long)context["runAsUser"]!);
        }
        Assert.Contains(contexts, c => c["runAsUser"] is not null);
        if (match.Groups[2].Success)
        {
            var gid = int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
            foreach (var context in contexts.Where(c => c["runAsGroup"] is not null))
            {
                Assert.Equal(gid, (long)context["runAsGroup"]!);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Accelerators))]
    public void Exposed_ports_are_the_server_defaults_and_the_contract(string accelerator)
    {
        var image = Image(accelerator);
        var defaults = new ServerOptions();
        var exposed = image.ExposedPorts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal([defaults.HttpPort, defaults.GrpcPort, defaults.MetricsPort], exposed);
        Assert.Equal([Manifests.CInt("INFERENCE_HTTP_PORT"), Manifests.CInt("INFERENCE_GRPC_PORT"), Manifests.CInt("INFERENCE_METRICS_PORT")], exposed);
        foreach (var key in new[] { "INFERENCE_HTTP_PORT", "INFERENCE_GRPC_PORT", "INFERENCE_METRICS_PORT" })
        {
            Assert.Equal(Manifests.C(key), image.Environment[key]);
        }
    }

    [Theory]
    [MemberData(nameof(Accelerators))]
    public void Every_INFERENCE_variable_of_the_image_is_a_server_setting(string accelerator)
    {
        var env = Image(accelerator).Environment;
        var flagVariables = CommandLine.Flags.Select(f => f.Environment).ToHashSet(StringComparer.Ordinal);
        var inference = env.Keys.Where(k => k.StartsWith("INFERENCE_", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(inference);
        foreach (var name in inference)
        {
            Assert.True(flagVariables.Contains(name) || Regex.IsMatch(name, "^INFERENCE_[A-Za-z]+(__[A-Za-z]+)+$"),
                $"ENV {name} is neither a flag's variable (Hosting/CommandLine.cs) nor an INFERENCE_Section__Key configuration key");
        }
        // The variables configure a server as the flags would: the same configuration keys, the device per flavor.
        var configuration = CommandLine.FromEnvironment(new System.Collections.Hashtable(env.ToDictionary(p => p.Key, p => (object?)p.Value)));
        Assert.Equal(accelerator == "cuda" ? "cuda:0" : "cpu", configuration["Repository:DefaultDevice"]);
        Assert.Equal("0.0.0.0", configuration["Server:BindAddress"]);
        Assert.Equal("1", env["DOTNET_gcServer"]);
    }

    [Theory]
    [MemberData(nameof(Accelerators))]
    public void The_model_repository_is_the_models_volume_and_the_samples_ship_in_app_models(string accelerator)
    {
        var image = Image(accelerator);
        Assert.Equal(Manifests.C("INFERENCE_MODEL_REPOSITORY"), image.Environment["INFERENCE_MODEL_REPOSITORY"]);
        Assert.Equal("/models", image.Environment["INFERENCE_MODEL_REPOSITORY"]);
        Assert.Contains("/models", image.Volumes);
        Assert.Contains(image.Copies, c => !c.Flags.ContainsKey("from") && c.Words.SequenceEqual(["models/", "/app/models/"]));
        // The cpu overlay's init container copies the samples from there into the pod's /models.
        var initContainers = KubernetesManifestTests.ServerDeployments("cpu")
            .SelectMany(d => d.Spec["template"]!["spec"]!["initContainers"]?.AsArray() ?? [])
            .ToList();
        Assert.Contains(initContainers, c => c!["command"]!.AsArray().Select(a => (string)a!).Any(a => a.StartsWith("/app/models", StringComparison.Ordinal)));
    }

    [Fact]
    public void The_build_publishes_with_the_accelerator_switch_and_the_entrypoint_runs_the_host_assembly()
    {
        Assert.Contains(BuildStage.All("ARG"), a => a.Words.SequenceEqual(["ACCELERATOR"]));
        var restore = BuildStage.All("RUN").Single(r => r.Body.Contains("dotnet restore", StringComparison.Ordinal));
        var publish = BuildStage.All("RUN").Single(r => r.Body.Contains("dotnet publish", StringComparison.Ordinal));
        Assert.Contains("-p:Accelerator=${ACCELERATOR}", restore.Words);
        Assert.Contains("-p:Accelerator=${ACCELERATOR}", publish.Words);
        Assert.Contains("--no-restore", publish.Words);
        var output = publish.Words[publish.Words.ToList().IndexOf("-o") + 1];

        // The published project is the server's host, whose assembly the entrypoint runs.
        var project = publish.Words.Single(w => w.EndsWith(".csproj", StringComparison.Ordinal));
        Assert.True(System.IO.File.Exists(Path.Combine(Paths.RepositoryRoot, project)), $"{project} does not exist");
        var assembly = typeof(InferenceServerApp).Assembly.GetName().Name;
        Assert.Equal(assembly, Path.GetFileNameWithoutExtension(project));
        Assert.Null(XDocument.Load(Path.Combine(Paths.RepositoryRoot, project)).Descendants("AssemblyName").FirstOrDefault());

        foreach (var accelerator in new[] { "cpu", "cuda" })
        {
            var image = Image(accelerator);
            Assert.Contains(image.Copies, c => c.Flags.GetValueOrDefault("from") == "build" && c.Words.SequenceEqual([output, "/app"]));
            Assert.Equal(["dotnet", $"/app/{assembly}.dll"], image.Entrypoint?.ExecForm);
        }
    }

    [Fact]
    public void Everything_the_build_copies_exists_and_is_in_the_build_context()
    {
        var ignore = DockerIgnore.Load(Path.Combine(Paths.RepositoryRoot, ".dockerignore"));
        var copies = File.Stages.SelectMany(s => s.All("COPY").Concat(s.All("ADD"))).Where(c => !c.Flags.ContainsKey("from")).ToList();
        Assert.NotEmpty(copies);
        foreach (var copy in copies)
        {
            foreach (var source in copy.Words.SkipLast(1))
            {
                var path = Path.Combine(Paths.RepositoryRoot, source);
                Assert.True(System.IO.File.Exists(path) || Directory.Exists(path), $"{copy}: {source} is not in the repository");
                Assert.False(ignore.Excludes(source.TrimEnd('/')), $"{copy}: .dockerignore leaves {source} out of the build context");
            }
        }
    }

    [Fact]
    public void The_restore_layer_copies_every_project_file_the_server_restores_from()
    {
        var instructions = BuildStage.Instructions.ToList();
        var restoreAt = instructions.FindIndex(i => i.Keyword == "RUN" && i.Body.Contains("dotnet restore", StringComparison.Ordinal));
        var copied = instructions.Take(restoreAt).Where(i => i.Keyword == "COPY")
            .SelectMany(c => c.Words.SkipLast(1).Select(source => (Source: source, Target: c.Words[^1])))
            .Select(p => p.Target.EndsWith('/') && p.Target != "./" ? p.Target.TrimStart('/') + Path.GetFileName(p.Source) : Path.GetFileName(p.Source))
            .ToHashSet(StringComparer.Ordinal);
        var needed = new HashSet<string>(StringComparer.Ordinal) { "Directory.Build.props", "Directory.Packages.props" };
        var pending = new Queue<string>(["server/InferenceServer/InferenceServer.csproj"]);
        while (pending.TryDequeue(out var project))
        {
            if (!needed.Add(project))
            {
                continue;
            }
            var folder = Path.GetDirectoryName(project)!;
            var xml = XDocument.Load(Path.Combine(Paths.RepositoryRoot, project));
            foreach (var reference in xml.Descendants("ProjectReference"))
            {
                pending.Enqueue(Normalize(Path.Combine(folder, (string)reference.Attribute("Include")!)));
            }
            foreach (var import in xml.Descendants("Import").Select(i => (string)i.Attribute("Project")!))
            {
                needed.Add(import.Replace("$(RepoRoot)", "", StringComparison.Ordinal));
            }
        }
        foreach (var file in needed)
        {
            Assert.True(copied.Contains(file), $"the restore layer (COPY before `dotnet restore`) lacks {file}; copied: {string.Join(", ", copied)}");
        }
    }

    [Fact]
    public void Dockerignore_leaves_out_build_outputs_and_keeps_the_sources()
    {
        var ignore = DockerIgnore.Load(Path.Combine(Paths.RepositoryRoot, ".dockerignore"));
        foreach (var path in new[]
        {
            "server/InferenceServer/bin/Debug/net10.0/InferenceServer.dll",
            "server/InferenceServer.Core/obj/project.assets.json",
            "tests/InferenceServer.Tests/obj/Debug/net10.0/InferenceServer.Tests.dll",
            ".tools/libstdcxx-compat/lib/libstdc++.so.6",
            "tests/clients/node/node_modules/openai/package.json",
            ".git/HEAD",
        })
        {
            Assert.True(ignore.Excludes(path), $".dockerignore does not leave out {path}");
        }
        foreach (var path in new[]
        {
            "Directory.Packages.props", "protos/grpc_service.proto", "server/InferenceServer/Program.cs",
            "server/InferenceServer.Core/InferenceServer.Core.csproj", "models/simple/1/model.onnx", "models/simple/config.yaml",
        })
        {
            Assert.True(System.IO.File.Exists(Path.Combine(Paths.RepositoryRoot, path)), path);
            Assert.False(ignore.Excludes(path), $".dockerignore leaves out {path}, which the image needs");
        }
    }

    [Fact]
    public void The_documented_build_commands_produce_the_tags_the_manifests_run()
    {
        var text = System.IO.File.ReadAllText(DockerfilePath);
        var builds = Regex.Matches(text, @"docker build -f Dockerfile\.cuda (?:--build-arg ACCELERATOR=(?<accelerator>\w+) )?-t (?<tag>\S+) \.")
            .ToDictionary(m => m.Groups["accelerator"].Success ? m.Groups["accelerator"].Value : File.GlobalArgDefaults["ACCELERATOR"], m => m.Groups["tag"].Value);
        Assert.Equal(["cpu", "cuda"], builds.Keys.Order(StringComparer.Ordinal));
        foreach (var (overlay, accelerator) in new[] { ("cpu", "cpu"), ("gpu", "cuda") })
        {
            var images = KubernetesManifestTests.ServerDeployments(overlay)
                .SelectMany(d => Containers(d).Select(c => (string)c["image"]!))
                .Distinct()
                .ToList();
            Assert.Equal([builds[accelerator]], images);
        }
        Assert.Matches(@"docker run --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v \$PWD/models:/models ", text);
    }

    [Theory]
    [MemberData(nameof(Accelerators))]
    public void The_healthcheck_runs_the_servers_own_live_probe(string accelerator)
    {
        var image = Image(accelerator);
        var healthcheck = image.Healthcheck;
        Assert.NotNull(healthcheck);
        Assert.StartsWith("CMD ", healthcheck.Body, StringComparison.Ordinal);
        var command = DockerInstruction.ParseExecForm(healthcheck.Body[4..]);
        Assert.NotNull(command);
        // The entrypoint with --health-check and no port: the probe reads INFERENCE_METRICS_PORT as the server does.
        Assert.Equal([.. image.Entrypoint!.ExecForm!, HealthProbe.Flag], command);
        Assert.True(healthcheck.Flags.ContainsKey("start-period"), "a start period: model loading must not count as failures");
    }

    [Fact]
    public async Task The_health_probe_answers_0_for_a_running_server_and_1_once_it_is_gone()
    {
        int metricsPort;
        await using (var server = await RunningServer.StartAsync(Paths.SampleModels))
        {
            metricsPort = server.Endpoints.MetricsPort;
            using (var metrics = server.NewMetricsClient())
            {
                using var response = await metrics.GetAsync(HealthProbe.LivePath);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            var output = new StringWriter();
            var code = await HealthProbe.RunAsync([HealthProbe.Flag, "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture)], output, CancellationToken.None);
            Assert.True(code == 0, output.ToString());
            Assert.Contains($"127.0.0.1:{metricsPort}{HealthProbe.LivePath}", output.ToString(), StringComparison.Ordinal);
        }
        var after = new StringWriter();
        Assert.Equal(1, await HealthProbe.RunAsync([HealthProbe.Flag, $"--metrics-port={metricsPort}"], after, CancellationToken.None));
        Assert.StartsWith("not live", after.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_healthcheck_command_with_the_images_environment_finds_a_live_server()
    {
        // Exactly what Docker runs: the HEALTHCHECK's exec form, configured only by the image's environment (here
        // with the running test server's metrics port in place of the image's 8002).
        var image = Image("cpu");
        var command = DockerInstruction.ParseExecForm(image.Healthcheck!.Body[4..])!;
        var dll = Path.Combine(Paths.RepositoryRoot, "server", "InferenceServer", "bin",
            AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar).Contains("Release") ? "Release" : "Debug", "net10.0", "InferenceServer.dll");
        Assert.True(System.IO.File.Exists(dll), $"{dll} not built");
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        var environment = image.Environment.Where(p => p.Key.StartsWith("INFERENCE_", StringComparison.Ordinal)).ToImmutableDictionary()
            .SetItem("INFERENCE_METRICS_PORT", server.Endpoints.MetricsPort.ToString(CultureInfo.InvariantCulture));
        var (code, output) = await RunAsync(command[0], [dll, .. command.Skip(2)], environment);
        Assert.True(code == 0, output);
        Assert.Contains($"live: http://127.0.0.1:{server.Endpoints.MetricsPort}{HealthProbe.LivePath}", output, StringComparison.Ordinal);

        var (badCode, badOutput) = await RunAsync(command[0], [dll, .. command.Skip(2)], environment.SetItem("INFERENCE_METRICS_PORT", "not-a-port"));
        Assert.True(badCode == 2, badOutput);
        Assert.Contains("Server:MetricsPort", badOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", badOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void The_health_probe_follows_the_servers_address_and_port_flags()
    {
        Assert.Equal("http://127.0.0.1:9102/v2/health/live", HealthProbe.LiveUrl(["--metrics-port", "9102", "--bind-address", "0.0.0.0"]).ToString());
        Assert.Equal("http://10.1.2.3:9102/v2/health/live", HealthProbe.LiveUrl(["--metrics-port", "9102", "--bind-address", "10.1.2.3"]).ToString());
        Assert.Equal("http://[::1]:9102/v2/health/live", HealthProbe.LiveUrl(["--metrics-port", "9102", "--bind-address", "::"]).ToString());
        var bad = Assert.Throws<ArgumentException>(() => HealthProbe.LiveUrl(["--metrics-port", "abc"]));
        Assert.Contains("Server:MetricsPort", bad.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => HealthProbe.LiveUrl(["--no-such-flag", "1"]));
        Assert.Contains(HealthProbe.Flag, CommandLine.Usage(), StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        var info = LibStdCxxCompat.ChildProcess(program, string.Join(' ', arguments.Select(a => $"\"{a}\"")));
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in 2 minutes");
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    private static IEnumerable<JsonObject> Containers(Manifest deployment)
    {
        var spec = deployment.Spec["template"]!["spec"]!;
        return (spec["containers"]?.AsArray() ?? []).Concat(spec["initContainers"]?.AsArray() ?? []).OfType<JsonObject>();
    }

    private static string Tag(string image) => image[(image.LastIndexOf(':') + 1)..];

    private static string Normalize(string path) => Path.GetRelativePath(Paths.RepositoryRoot, Path.GetFullPath(Path.Combine(Paths.RepositoryRoot, path))).Replace('\\', '/');
}
