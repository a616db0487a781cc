using System.Text.Json.Nodes;
using InferenceServer.Hosting;
using k8s.Models;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// k8s/kserve: the ClusterServingRuntime runs our server with flags it has, on the ports KServe routes to and the
/// model directory KServe's storage initializer fills; the InferenceService example uses that runtime.
/// </summary>
public sealed class KServeManifestTests
{
    private static IReadOnlyList<Manifest> Documents =>
        Manifests.YamlFiles(Path.Combine("k8s", "kserve"))
            .SelectMany(f => Manifests.Parse(File.ReadAllText(Path.Combine(Infrastructure.Paths.RepositoryRoot, f)), f))
            .ToList();

    private static Manifest Runtime => Documents.Single(d => d.Kind == "ClusterServingRuntime");

    [Fact]
    public void The_runtime_serves_onnx_and_pytorch_over_v2_and_grpc_v2()
    {
        var runtime = Runtime;
        Assert.Equal("serving.kserve.io/v1alpha1", runtime.ApiVersion);
        Assert.Null(runtime.Namespace); // cluster-scoped
        string[] fields = ["annotations", "supportedModelFormats", "protocolVersions", "containers", "multiModel", "disabled", "nodeSelector", "tolerations", "affinity", "volumes", "imagePullSecrets"];
        var unknown = runtime.Spec.Select(kv => kv.Key).Except(fields).ToList();
        Assert.True(unknown.Count == 0, $"{runtime}: unknown spec fields {string.Join(", ", unknown)}");
        Assert.Equal(["v2", "grpc-v2"], runtime.Spec["protocolVersions"]!.AsArray().Select(v => (string?)v));
        var formats = runtime.Spec["supportedModelFormats"]!.AsArray().Select(f => f!.AsObject()).ToList();
        Assert.Equal(["onnx", "pytorch"], formats.Select(f => (string?)f["name"]).Order(StringComparer.Ordinal));
        foreach (var format in formats)
        {
            Assert.True(format["autoSelect"]?.GetValue<bool>() == true, $"{runtime}: supportedModelFormats {format["name"]} needs autoSelect: true");
            Assert.True(format["version"] is null || format["version"]!.GetValueKind() == System.Text.Json.JsonValueKind.String,
                $"{runtime}: supportedModelFormats {format["name"]}.version must be a string");
            var extra = format.Select(kv => kv.Key).Except(["name", "version", "autoSelect", "priority"]).ToList();
            Assert.True(extra.Count == 0, $"{runtime}: supportedModelFormats {format["name"]} has unknown fields {string.Join(", ", extra)}");
        }
    }

    [Fact]
    public void The_runtimes_container_uses_the_servers_flags_kserves_ports_and_mnt_models()
    {
        var runtime = Runtime;
        var containers = runtime.Spec["containers"]!.AsArray();
        Assert.Single(containers);
        var container = (V1Container)KubernetesTypedModels.Deserialize(containers[0]!.AsObject(), typeof(V1Container), $"{runtime} containers[0]");
        Assert.Equal("kserve-container", container.Name);
        // The server's own parser: an unknown flag or a missing value throws, as it would stop the server with exit code 2.
        Dictionary<string, string?> flags;
        try
        {
            flags = CommandLine.Parse(container.Args.ToList());
        }
        catch (ArgumentException e)
        {
            throw new Xunit.Sdk.XunitException($"{runtime}: containers[kserve-container].args: {e.Message}");
        }
        Assert.True(flags.GetValueOrDefault("Repository:Path") == "/mnt/models", $"{runtime}: --model-repository must be /mnt/models, where KServe's storage initializer puts the model");
        var http = int.Parse(flags.GetValueOrDefault("Server:HttpPort") ?? "8000", System.Globalization.CultureInfo.InvariantCulture);
        var grpc = int.Parse(flags.GetValueOrDefault("Server:GrpcPort") ?? "8001", System.Globalization.CultureInfo.InvariantCulture);
        var metrics = int.Parse(flags.GetValueOrDefault("Server:MetricsPort") ?? "8002", System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(http == 8080, $"{runtime}: --http-port is {http}; KServe routes v2 REST to 8080 unless the InferenceService says otherwise");
        Assert.True(new HashSet<int> { http, grpc, metrics }.Count == 3, $"{runtime}: the REST, gRPC and metrics ports {http}/{grpc}/{metrics} collide");
        var port = Assert.Single(container.Ports);
        Assert.True(port.ContainerPort == http && port.Name == "http1", $"{runtime}: the one container port (Knative allows one) must be the REST port {http}, named http1");
        var probe = container.ReadinessProbe?.HttpGet ?? throw new Xunit.Sdk.XunitException($"{runtime}: no readinessProbe.httpGet (the queue-proxy would route before the models load)");
        Assert.True(probe.Port.Value == http.ToString(System.Globalization.CultureInfo.InvariantCulture) && probe.Path == Manifests.C("MESH_READINESS_PATH"),
            $"{runtime}: readinessProbe must GET {Manifests.C("MESH_READINESS_PATH")} on the serving port {http} (Knative allows no other), has {probe.Path} on {probe.Port.Value}");
        var annotations = runtime.Spec["annotations"]!.AsObject();
        Assert.True((string?)annotations["prometheus.kserve.io/port"] == metrics.ToString(System.Globalization.CultureInfo.InvariantCulture),
            $"{runtime}: annotation prometheus.kserve.io/port is {annotations["prometheus.kserve.io/port"]}, the server's --metrics-port is {metrics}");
        Assert.Equal(InferenceServer.Http.MetricsEndpoint.Path, (string?)annotations["prometheus.kserve.io/path"]);
        Assert.True(container.SecurityContext?.RunAsNonRoot == true && container.SecurityContext.AllowPrivilegeEscalation == false, $"{runtime}: containers[kserve-container] must run non-root without privilege escalation");
    }

    [Fact]
    public void The_inference_service_uses_the_runtime_with_a_format_and_protocol_it_supports()
    {
        var runtime = Runtime;
        var services = Documents.Where(d => d.Kind == "InferenceService").ToList();
        Assert.NotEmpty(services);
        foreach (var service in services)
        {
            Assert.Equal("serving.kserve.io/v1beta1", service.ApiVersion);
            var model = service.Spec["predictor"]?["model"]?.AsObject() ?? throw new Xunit.Sdk.XunitException($"{service}: spec.predictor.model is missing");
            Assert.True((string?)model["runtime"] == runtime.Name, $"{service}: spec.predictor.model.runtime is {model["runtime"]}, not {runtime.Name}");
            var format = (string?)model["modelFormat"]?["name"];
            Assert.True(runtime.Spec["supportedModelFormats"]!.AsArray().Any(f => (string?)f!["name"] == format),
                $"{service}: spec.predictor.model.modelFormat.name {format} is not one {runtime} supports");
            var protocol = (string?)model["protocolVersion"];
            Assert.True(protocol is null || runtime.Spec["protocolVersions"]!.AsArray().Any(p => (string?)p == protocol),
                $"{service}: spec.predictor.model.protocolVersion {protocol} is not one {runtime} speaks");
            Assert.True(model["storageUri"] is JsonValue, $"{service}: spec.predictor.model.storageUri is missing");
        }
    }
}
