using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Admission;
using InferenceServer.Hosting;
using InferenceServer.Http;
using InferenceServer.Lifecycle;
using InferenceServer.Repository;
using InferenceServer.Tests.Infrastructure;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// The k8s/ overlays as kubectl kustomize renders them: strict typed models, the shared names, cross references
/// (Service, PDB, HPA to Deployments), the contract (k8s/base/contract.env) against the server's own defaults and a
/// running server, and the drain arithmetic.
/// </summary>
public sealed class KubernetesManifestTests
{
    private const string App = "inference-server";

    /// <summary>Service port name, contract key of its number, appProtocol.</summary>
    private static readonly (string Name, string Key, string AppProtocol)[] Ports =
    [
        ("http-rest", "INFERENCE_HTTP_PORT", "http"),
        ("grpc-infer", "INFERENCE_GRPC_PORT", "grpc"),
        ("http-metrics", "INFERENCE_METRICS_PORT", "http"),
    ];

    public static TheoryData<string> OverlayNames()
    {
        var data = new TheoryData<string>();
        foreach (var overlay in Manifests.Overlays)
        {
            data.Add(overlay);
        }
        return data;
    }

    [Fact]
    public void The_three_overlays_exist_and_render()
    {
        Assert.Equal(["cpu", "gateway-only", "gpu"], Manifests.Overlays);
        foreach (var overlay in Manifests.Overlays)
        {
            Assert.NotEmpty(Manifests.Render(overlay));
        }
    }

    [Fact]
    public void Every_kustomization_uses_only_current_kustomize_fields()
    {
        // Deprecated in kustomize v5 (kubectl 1.27+) and slated for removal: patches, replacements, resources, labels instead.
        string[] deprecated = ["bases", "patchesStrategicMerge", "patchesJson6902", "vars", "commonLabels", "imageTags"];
        var files = Manifests.YamlFiles("k8s").Where(f => Path.GetFileName(f) == "kustomization.yaml").ToList();
        Assert.True(files.Count >= 8, $"only {files.Count} kustomization.yaml files under k8s/");
        foreach (var file in files)
        {
            var kustomization = Manifests.ParseValue(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, file)), file)!.AsObject();
            // A kustomize Component (k8s/components/*) is v1alpha1, the only version of that kind.
            Assert.True((kustomization["apiVersion"]?.ToString(), kustomization["kind"]?.ToString()) is ("kustomize.config.k8s.io/v1beta1", "Kustomization")
                    or ("kustomize.config.k8s.io/v1alpha1", "Component"),
                $"{file}: apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization (or v1alpha1 Component)");
            var used = kustomization.Select(kv => kv.Key).Intersect(deprecated).ToList();
            Assert.True(used.Count == 0, $"{file}: deprecated kustomize fields {string.Join(", ", used)}");
        }
    }

    [Fact]
    public void Every_built_in_document_deserializes_strictly_and_every_other_is_a_known_custom_resource()
    {
        var failures = new List<string>();
        var checkedCount = 0;
        // Each overlay's rendering and istio/ (the ratelimit Deployment, Service and ConfigMap live there).
        var all = Manifests.Overlays.SelectMany(Manifests.Render).Concat(Directory.Exists(Manifests.IstioFolder) ? Manifests.Istio : []);
        foreach (var manifest in all)
        {
            if (KubernetesTypedModels.IsBuiltInGroup(manifest.Group))
            {
                try
                {
                    KubernetesTypedModels.Deserialize(manifest);
                    checkedCount++;
                }
                catch (InvalidOperationException e)
                {
                    failures.Add(e.Message);
                }
            }
            else if (!KubernetesTypedModels.CustomResourceGroups.Contains(manifest.Group))
            {
                failures.Add($"{manifest}: {manifest.ApiVersion} is neither built-in nor one of the custom resource groups the tests validate ({string.Join(", ", KubernetesTypedModels.CustomResourceGroups)})");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // Namespace, ServiceAccount, ConfigMap, Service, 2 Deployments, 2 PDBs, 2 HPAs in each of three overlays at least.
        Assert.True(checkedCount >= 30, $"only {checkedCount} built-in documents were checked");
    }

    [Fact]
    public void Strict_deserialization_rejects_an_unknown_field_and_an_unknown_kind()
    {
        var deployment = ServerDeployments("gpu").First();
        // The control: the real document passes.
        KubernetesTypedModels.Deserialize(deployment);

        var misspelt = (JsonObject)deployment.Body.DeepClone();
        ((JsonObject)misspelt["spec"]!["template"]!["spec"]!["containers"]![0]!)["readinesProbe"] = new JsonObject { ["periodSeconds"] = 5 };
        var e = Assert.Throws<InvalidOperationException>(() => KubernetesTypedModels.Deserialize(deployment with { Body = misspelt }));
        Assert.Contains("readinesProbe", e.Message);
        Assert.Contains(deployment.Name, e.Message);

        Assert.Throws<InvalidOperationException>(() => KubernetesTypedModels.Deserialize(deployment with { Kind = "Deploymnet" }));
        Assert.Throws<InvalidOperationException>(() => KubernetesTypedModels.Deserialize(deployment with { ApiVersion = "extensions/v1beta1" }));
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Namespace_service_account_and_contract_config_map_are_the_shared_names(string overlay)
    {
        var docs = Manifests.Render(overlay);
        var ns = KubernetesTypedModels.As<V1Namespace>(Single(docs, "Namespace", "inference"));
        Assert.True(ns.Metadata.Labels?.TryGetValue("istio-injection", out var injection) == true && injection == "enabled",
            $"{overlay}: Namespace/inference must be labelled istio-injection: enabled");
        Single(docs, "ServiceAccount", App);
        var contract = KubernetesTypedModels.As<V1ConfigMap>(Single(docs, "ConfigMap", "inference-contract"));
        // Generated from contract.env with a fixed name: every key, unchanged.
        Assert.Equal(Manifests.Contract.OrderBy(kv => kv.Key, StringComparer.Ordinal), contract.Data.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        foreach (var manifest in docs.Where(d => d.Kind != "Namespace"))
        {
            Assert.True(manifest.Namespace == "inference", $"{manifest}: metadata.namespace is {manifest.Namespace ?? "missing"}, not inference");
        }
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Deployments_v1_and_v2_run_the_server_with_the_contracts_ports_and_config(string overlay)
    {
        var deployments = ServerDeployments(overlay).ToDictionary(d => d.Name);
        Assert.Equal(["inference-server-v1", "inference-server-v2"], deployments.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, manifest) in deployments)
        {
            var deployment = KubernetesTypedModels.As<V1Deployment>(manifest);
            var version = name[(name.LastIndexOf('-') + 1)..];
            var labels = deployment.Spec.Template.Metadata.Labels;
            Assert.True(labels["app"] == App && labels["version"] == version, $"{manifest}: pod labels must be app: {App}, version: {version}");
            Assert.True(Selects(deployment.Spec.Selector.MatchLabels, labels), $"{manifest}: spec.selector does not select its own pod template");
            Assert.Equal(App, deployment.Spec.Template.Spec.ServiceAccountName);
            var server = Server(manifest, deployment);
            foreach (var (port, key, _) in Ports)
            {
                var container = server.Ports?.SingleOrDefault(p => p.Name == port)
                    ?? throw new Xunit.Sdk.XunitException($"{manifest}: container server has no port named {port}");
                Assert.True(container.ContainerPort == Manifests.CInt(key),
                    $"{manifest}: containers[server].ports[{port}].containerPort is {container.ContainerPort}, contract {key} is {Manifests.C(key)}");
            }
            Assert.True(server.EnvFrom?.Any(e => e.ConfigMapRef?.Name == "inference-contract") == true,
                $"{manifest}: containers[server].envFrom does not load ConfigMap inference-contract (the server's INFERENCE_* settings)");
            // The model repository: mounted read-only where the contract tells the server to look.
            var models = server.VolumeMounts?.SingleOrDefault(m => m.MountPath == Manifests.C("INFERENCE_MODEL_REPOSITORY"))
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: nothing is mounted at INFERENCE_MODEL_REPOSITORY {Manifests.C("INFERENCE_MODEL_REPOSITORY")}");
            Assert.True(models.ReadOnlyProperty == true, $"{manifest}: the model volume must be mounted readOnly in the server container");
            Assert.Contains(server.VolumeMounts!, m => m.MountPath == "/tmp");
            CheckVolumes(manifest, deployment.Spec.Template.Spec);

            // The README's probe numbers.
            AssertProbe(manifest, "startupProbe", server.StartupProbe, 5, 2, 60);
            AssertProbe(manifest, "livenessProbe", server.LivenessProbe, 10, 2, 3);
            AssertProbe(manifest, "readinessProbe", server.ReadinessProbe, 5, 2, 2);

            // Rollouts never go below capacity.
            Assert.True(deployment.Spec.Strategy?.Type == "RollingUpdate"
                && deployment.Spec.Strategy.RollingUpdate?.MaxUnavailable?.Value == "0"
                && deployment.Spec.Strategy.RollingUpdate?.MaxSurge?.Value == "1",
                $"{manifest}: spec.strategy must be RollingUpdate with maxUnavailable 0 and maxSurge 1");
            Assert.True(deployment.Spec.MinReadySeconds > 0, $"{manifest}: spec.minReadySeconds must be set");
            Assert.True(deployment.Spec.Template.Spec.TopologySpreadConstraints?.Any(t =>
                t.TopologyKey == "kubernetes.io/hostname" && Selects(t.LabelSelector.MatchLabels, labels)) == true,
                $"{manifest}: no topologySpreadConstraints over kubernetes.io/hostname selecting its pods");

            // Prometheus scrape annotations for the metrics port.
            var annotations = deployment.Spec.Template.Metadata.Annotations;
            Assert.True(annotations.TryGetValue("prometheus.io/scrape", out var scrape) && scrape == "true", $"{manifest}: prometheus.io/scrape must be \"true\"");
            Assert.True(annotations.TryGetValue("prometheus.io/port", out var metricsPort) && metricsPort == Manifests.C("INFERENCE_METRICS_PORT"),
                $"{manifest}: prometheus.io/port is {metricsPort ?? "missing"}, contract INFERENCE_METRICS_PORT is {Manifests.C("INFERENCE_METRICS_PORT")}");
            Assert.True(annotations.TryGetValue("prometheus.io/path", out var metricsPath) && metricsPath == MetricsEndpoint.Path,
                $"{manifest}: prometheus.io/path is {metricsPath ?? "missing"}, the server serves {MetricsEndpoint.Path}");
        }
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void The_service_selects_the_server_pods_and_targets_their_named_ports(string overlay)
    {
        var docs = Manifests.Render(overlay);
        var serviceManifest = Single(docs, "Service", App);
        var service = KubernetesTypedModels.As<V1Service>(serviceManifest);
        var deployments = ServerDeployments(overlay).Select(d => (d, KubernetesTypedModels.As<V1Deployment>(d))).ToList();
        var selected = deployments.Where(d => Selects(service.Spec.Selector, d.Item2.Spec.Template.Metadata.Labels)).ToList();
        Assert.True(selected.Count == 2, $"{serviceManifest}: spec.selector selects {selected.Count} of the server Deployments, not v1 and v2");
        Assert.Equal(Ports.Select(p => p.Name), service.Spec.Ports.Select(p => p.Name));
        foreach (var (name, key, appProtocol) in Ports)
        {
            var port = service.Spec.Ports.Single(p => p.Name == name);
            Assert.True(port.Port == Manifests.CInt(key), $"{serviceManifest}: ports[{name}].port is {port.Port}, contract {key} is {Manifests.C(key)}");
            Assert.True(port.AppProtocol == appProtocol, $"{serviceManifest}: ports[{name}].appProtocol is {port.AppProtocol ?? "missing"}, not {appProtocol}");
            Assert.True(name.StartsWith(appProtocol + "-", StringComparison.Ordinal), $"{serviceManifest}: port name {name} does not start with its protocol");
            foreach (var (manifest, deployment) in selected)
            {
                var container = Server(manifest, deployment).Ports.SingleOrDefault(p => p.Name == name);
                var target = port.TargetPort?.Value;
                Assert.True(container is not null && (target == name || target == container.ContainerPort.ToString(CultureInfo.InvariantCulture)),
                    $"{serviceManifest}: ports[{name}].targetPort {target} is not {manifest}'s container port {name} ({container?.ContainerPort})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Drain_timing_lets_the_server_finish_before_the_sidecar_and_the_kubelet_stop_it(string overlay)
    {
        var configMap = KubernetesTypedModels.As<V1ConfigMap>(Single(Manifests.Render(overlay), "ConfigMap", "inference-contract"));
        foreach (var manifest in ServerDeployments(overlay))
        {
            var deployment = KubernetesTypedModels.As<V1Deployment>(manifest);
            var pod = deployment.Spec.Template.Spec;
            var server = Server(manifest, deployment);
            var preStop = server.Lifecycle?.PreStop?.Sleep?.Seconds
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: containers[server].lifecycle.preStop.sleep.seconds is missing");
            // What the server runs with: an env entry wins over envFrom.
            double Setting(string key) => double.Parse(server.Env?.FirstOrDefault(e => e.Name == key)?.Value ?? configMap.Data[key], CultureInfo.InvariantCulture);
            var delay = Setting("INFERENCE_DRAIN_DELAY");
            var timeout = Setting("INFERENCE_DRAIN_TIMEOUT");
            var grace = pod.TerminationGracePeriodSeconds
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: spec.template.spec.terminationGracePeriodSeconds is missing (the default 30 is too short)");

            Assert.True(preStop > 0 && preStop == Manifests.CInt("MESH_PRESTOP_SECONDS"),
                $"{manifest}: preStop sleep is {preStop} s, contract MESH_PRESTOP_SECONDS is {Manifests.C("MESH_PRESTOP_SECONDS")} (and must be > 0)");
            Assert.True(grace == Manifests.CInt("MESH_TERMINATION_GRACE_SECONDS"),
                $"{manifest}: terminationGracePeriodSeconds is {grace}, contract MESH_TERMINATION_GRACE_SECONDS is {Manifests.C("MESH_TERMINATION_GRACE_SECONDS")}");
            var drain = preStop + delay + timeout;
            Assert.True(grace > drain + DrainOptions.HostBackstop.TotalSeconds,
                $"{manifest}: terminationGracePeriodSeconds {grace} <= preStop {preStop} + drain delay {delay} + drain timeout {timeout} + host backstop {DrainOptions.HostBackstop.TotalSeconds}: the kubelet kills the server mid-drain");

            var annotations = deployment.Spec.Template.Metadata.Annotations;
            if (!annotations.TryGetValue("proxy.istio.io/config", out var proxyYaml))
            {
                throw new Xunit.Sdk.XunitException($"{manifest}: pod annotation proxy.istio.io/config is missing");
            }
            var proxy = Manifests.ParseValue(proxyYaml, $"{manifest} annotation proxy.istio.io/config") as JsonObject
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: annotation proxy.istio.io/config is not a YAML mapping");
            Assert.True(proxy["holdApplicationUntilProxyStarts"]?.GetValueKind() == System.Text.Json.JsonValueKind.True,
                $"{manifest}: proxy.istio.io/config holdApplicationUntilProxyStarts must be true");
            var sidecarDrain = Duration((string?)proxy["terminationDrainDuration"]
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: proxy.istio.io/config has no terminationDrainDuration (Istio's default is 5 s)"));
            Assert.True(sidecarDrain == Manifests.CInt("MESH_SIDECAR_DRAIN_SECONDS"),
                $"{manifest}: proxy.istio.io/config terminationDrainDuration is {sidecarDrain} s, contract MESH_SIDECAR_DRAIN_SECONDS is {Manifests.C("MESH_SIDECAR_DRAIN_SECONDS")}");
            Assert.True(sidecarDrain >= drain,
                $"{manifest}: proxy.istio.io/config terminationDrainDuration {sidecarDrain} s < preStop {preStop} + drain delay {delay} + drain timeout {timeout}: the sidecar dies before the server is done");
            Assert.True(grace > sidecarDrain, $"{manifest}: terminationGracePeriodSeconds {grace} must exceed the sidecar's drain {sidecarDrain}");
            var exitOnZero = proxy["proxyMetadata"]?["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"];
            Assert.True(exitOnZero?.GetValueKind() == System.Text.Json.JsonValueKind.String && (string?)exitOnZero == "true",
                $"{manifest}: proxy.istio.io/config proxyMetadata.EXIT_ON_ZERO_ACTIVE_CONNECTIONS must be the string \"true\" (proxyMetadata values are strings)");
        }
    }

    [Fact]
    public void The_contract_states_the_servers_own_defaults()
    {
        // Read the contract the way the container reads it (environment: flag twins and INFERENCE_Section__Key).
        var configuration = ContractConfiguration(includePortsAndRepository: true);
        var server = configuration.GetSection("Server").Get<ServerOptions>()!;
        var defaults = new ServerOptions();
        Assert.True(server.HttpPort == defaults.HttpPort && server.GrpcPort == defaults.GrpcPort && server.MetricsPort == defaults.MetricsPort,
            $"contract.env ports {server.HttpPort}/{server.GrpcPort}/{server.MetricsPort} are not the server's defaults {defaults.HttpPort}/{defaults.GrpcPort}/{defaults.MetricsPort} (ServerOptions); the image's EXPOSE, docs and clients use the defaults");
        var drain = configuration.GetSection("Drain").Get<DrainOptions>()!;
        var drainDefaults = new DrainOptions();
        Assert.True(drain.DelaySeconds == drainDefaults.DelaySeconds && drain.TimeoutSeconds == drainDefaults.TimeoutSeconds,
            $"contract.env drain {drain.DelaySeconds}/{drain.TimeoutSeconds} s differs from DrainOptions' defaults {drainDefaults.DelaySeconds}/{drainDefaults.TimeoutSeconds} s");
        var admission = configuration.GetSection("Admission").Get<AdmissionOptions>()!;
        Assert.Equal(new AdmissionOptions().TenantHeader, admission.TenantHeader);
        Assert.Equal("/models", configuration.GetSection("Repository").Get<ModelRepositoryOptions>()!.Path);
        // Every INFERENCE_* key is one the server reads: a flag twin or a section the server binds.
        string[] sections = ["Server", "Repository", "Drain", "OpenAi", "Metrics", "Limits", "Admission"];
        foreach (var key in Manifests.Contract.Keys.Where(k => k.StartsWith("INFERENCE_", StringComparison.Ordinal)))
        {
            Assert.True(CommandLine.Flags.Any(f => f.Environment == key) || sections.Any(s => key.StartsWith($"INFERENCE_{s}__", StringComparison.Ordinal)),
                $"contract.env {key} is no setting the server reads (no flag twin, no INFERENCE_Section__Key of a bound section)");
        }
    }

    [Fact]
    public async Task A_server_run_with_the_contract_serves_every_probe_path_and_honours_its_settings()
    {
        // The contract's settings except ports (tests take free ports) and the repository (the sample models here).
        var configuration = ContractConfiguration(includePortsAndRepository: false).AsEnumerable()
            .Where(kv => kv.Value is not null)
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        // One request per tenant, refilled in ~17 minutes: the second request of a tenant is refused.
        configuration["Admission:Default:TenantRequestsPerSecond"] = "0.001";
        configuration["Admission:Default:TenantBurst"] = "1";
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, configuration);
        using var admin = server.NewMetricsClient();

        var drain = server.Services.GetRequiredService<DrainOptions>();
        Assert.Equal(double.Parse(Manifests.C("INFERENCE_DRAIN_DELAY"), CultureInfo.InvariantCulture), drain.DelaySeconds);
        Assert.Equal(double.Parse(Manifests.C("INFERENCE_DRAIN_TIMEOUT"), CultureInfo.InvariantCulture), drain.TimeoutSeconds);

        // The tenant header the gateway sets is the one the server partitions by.
        var header = Manifests.C("INFERENCE_Admission__TenantHeader");
        Assert.Equal(HttpStatusCode.OK, (await Infer(server, header, "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Infer(server, header, "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Infer(server, header, "tenant-b")).StatusCode);

        // Every probe of every rendered Deployment: on the metrics port, a path the server answers 200 once started.
        var probes = new List<(Manifest Manifest, string Probe, string Path)>();
        foreach (var overlay in Manifests.Overlays)
        {
            foreach (var manifest in ServerDeployments(overlay))
            {
                var container = Server(manifest, KubernetesTypedModels.As<V1Deployment>(manifest));
                foreach (var (name, probe) in new[] { ("startupProbe", container.StartupProbe), ("livenessProbe", container.LivenessProbe), ("readinessProbe", container.ReadinessProbe) })
                {
                    var get = probe?.HttpGet ?? throw new Xunit.Sdk.XunitException($"{manifest}: containers[server].{name} has no httpGet");
                    Assert.True(get.Port.Value == Manifests.C("INFERENCE_METRICS_PORT") || get.Port.Value == "http-metrics",
                        $"{manifest}: containers[server].{name}.httpGet.port is {get.Port.Value}, not the metrics port {Manifests.C("INFERENCE_METRICS_PORT")}");
                    probes.Add((manifest, name, get.Path));
                }
            }
        }
        Assert.Equal(18, probes.Count);
        foreach (var (manifest, name, path) in probes)
        {
            var status = (await admin.GetAsync(path)).StatusCode;
            Assert.True(status == HttpStatusCode.OK, $"{manifest}: containers[server].{name}.httpGet.path {path} answers {(int)status} on the metrics port of a started server");
        }
        Assert.Equal(
            [Manifests.C("MESH_LIVENESS_PATH"), Manifests.C("MESH_READINESS_PATH"), Manifests.C("MESH_STARTUP_PATH")],
            probes.Select(p => p.Path).Distinct().Order(StringComparer.Ordinal));
        // The check can fail: a path the server does not serve is a 404.
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync(Manifests.C("MESH_READINESS_PATH") + "z")).StatusCode);
        // KServe's runtime (k8s/kserve) probes readiness on the REST port, the one port Knative allows: served there too.
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync(Manifests.C("MESH_READINESS_PATH"))).StatusCode);
        // And the scrape annotations' path is served on the metrics port.
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(MetricsEndpoint.Path)).StatusCode);
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Every_container_of_the_server_pods_runs_restricted(string overlay)
    {
        foreach (var manifest in ServerDeployments(overlay))
        {
            var pod = KubernetesTypedModels.As<V1Deployment>(manifest).Spec.Template.Spec;
            Assert.True(pod.SecurityContext?.RunAsNonRoot == true && pod.SecurityContext.SeccompProfile?.Type == "RuntimeDefault",
                $"{manifest}: spec.template.spec.securityContext needs runAsNonRoot: true and seccompProfile RuntimeDefault");
            foreach (var container in pod.Containers.Concat(pod.InitContainers ?? []))
            {
                var sc = container.SecurityContext ?? throw new Xunit.Sdk.XunitException($"{manifest}: container {container.Name} has no securityContext");
                var where = $"{manifest}: containers[{container.Name}].securityContext";
                Assert.True(sc.RunAsNonRoot == true && (sc.RunAsUser ?? pod.SecurityContext.RunAsUser) == 10001, $"{where}: runAsNonRoot true, runAsUser 10001");
                Assert.True(sc.ReadOnlyRootFilesystem == true, $"{where}: readOnlyRootFilesystem must be true");
                Assert.True(sc.AllowPrivilegeEscalation == false, $"{where}: allowPrivilegeEscalation must be false");
                Assert.True(sc.Capabilities?.Drop?.Contains("ALL") == true && sc.Capabilities.Add is null or { Count: 0 }, $"{where}: capabilities must drop ALL and add none");
                Assert.True(container.Resources?.Requests?.ContainsKey("cpu") == true && container.Resources.Requests.ContainsKey("memory")
                    && container.Resources.Limits?.ContainsKey("memory") == true, $"{manifest}: containers[{container.Name}].resources need cpu and memory requests and a memory limit");
            }
        }
    }

    [Fact]
    public void The_gpu_overlay_requests_a_gpu_on_gpu_nodes_and_runs_models_on_cuda_from_a_read_only_claim()
    {
        var docs = Manifests.Render("gpu");
        var claim = KubernetesTypedModels.As<V1PersistentVolumeClaim>(Single(docs, "PersistentVolumeClaim", "inference-models"));
        Assert.Equal(["ReadOnlyMany"], claim.Spec.AccessModes);
        foreach (var manifest in ServerDeployments("gpu"))
        {
            var deployment = KubernetesTypedModels.As<V1Deployment>(manifest);
            var pod = deployment.Spec.Template.Spec;
            var server = Server(manifest, deployment);
            Assert.True(server.Resources.Limits.TryGetValue("nvidia.com/gpu", out var gpus) && gpus.ToString() == "1",
                $"{manifest}: containers[server].resources.limits needs nvidia.com/gpu: 1");
            Assert.True(server.Image.EndsWith("-cuda", StringComparison.Ordinal), $"{manifest}: containers[server].image {server.Image} is not the CUDA image");
            Assert.True(server.Env?.Any(e => e.Name == "INFERENCE_DEFAULT_DEVICE" && e.Value == "cuda:0") == true,
                $"{manifest}: containers[server].env needs INFERENCE_DEFAULT_DEVICE=cuda:0");
            Assert.True(pod.Tolerations?.Any(t => t.Key == "nvidia.com/gpu" && t.Effect == "NoSchedule" && (t.OperatorProperty == "Exists" || t.Value is not null)) == true,
                $"{manifest}: spec.template.spec.tolerations must tolerate nvidia.com/gpu:NoSchedule");
            Assert.True(pod.NodeSelector?.TryGetValue("nvidia.com/gpu.present", out var present) == true && present == "true",
                $"{manifest}: spec.template.spec.nodeSelector needs nvidia.com/gpu.present: \"true\"");
            var models = ModelVolume(manifest, deployment);
            Assert.True(models.PersistentVolumeClaim?.ClaimName == "inference-models" && models.PersistentVolumeClaim.ReadOnlyProperty == true,
                $"{manifest}: the model volume must be the PersistentVolumeClaim inference-models, readOnly");
        }
    }

    [Fact]
    public void The_cpu_overlay_copies_the_images_models_into_the_model_volume()
    {
        foreach (var manifest in ServerDeployments("cpu"))
        {
            var deployment = KubernetesTypedModels.As<V1Deployment>(manifest);
            var server = Server(manifest, deployment);
            var models = ModelVolume(manifest, deployment);
            Assert.True(models.EmptyDir is not null, $"{manifest}: the cpu overlay's model volume is an emptyDir");
            var init = deployment.Spec.Template.Spec.InitContainers?.SingleOrDefault(c => c.VolumeMounts?.Any(m => m.Name == models.Name && m.ReadOnlyProperty != true) == true)
                ?? throw new Xunit.Sdk.XunitException($"{manifest}: no init container writes the model volume {models.Name}");
            var target = init.VolumeMounts.Single(m => m.Name == models.Name).MountPath;
            Assert.Equal(server.Image, init.Image);
            Assert.True(init.Command is ["cp", "-R", "/app/models/.", var to] && to.TrimEnd('/') == target.TrimEnd('/'),
                $"{manifest}: init container {init.Name} must copy /app/models/. into {target}, has {string.Join(' ', init.Command ?? [])}");
            Assert.Contains(server.Resources.Limits.Keys, k => k == "memory");
            Assert.DoesNotContain("nvidia.com/gpu", server.Resources.Limits.Keys);
        }
    }

    [Fact]
    public void Only_the_gateway_only_overlay_runs_the_server_without_a_sidecar()
    {
        foreach (var overlay in Manifests.Overlays)
        {
            foreach (var manifest in ServerDeployments(overlay))
            {
                var metadata = KubernetesTypedModels.As<V1Deployment>(manifest).Spec.Template.Metadata;
                var label = metadata.Labels.TryGetValue("sidecar.istio.io/inject", out var l) ? l : null;
                var annotation = metadata.Annotations.TryGetValue("sidecar.istio.io/inject", out var a) ? a : null;
                if (overlay == "gateway-only")
                {
                    Assert.True(label == "false", $"{manifest}: pod label sidecar.istio.io/inject must be \"false\" in the gateway-only layout");
                }
                else
                {
                    Assert.True(label is null or "true" && annotation is null or "true", $"{manifest}: the {overlay} overlay must keep the sidecar");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Every_server_deployment_has_an_autoscaler_that_owns_its_replicas(string overlay)
    {
        var docs = Manifests.Render(overlay);
        var autoscalers = docs.Where(d => d.Kind == "HorizontalPodAutoscaler").Select(d => (d, KubernetesTypedModels.As<V2HorizontalPodAutoscaler>(d))).ToList();
        foreach (var manifest in ServerDeployments(overlay))
        {
            var hpa = autoscalers.Where(a => a.Item2.Spec.ScaleTargetRef.Kind == "Deployment" && a.Item2.Spec.ScaleTargetRef.Name == manifest.Name).ToList();
            Assert.True(hpa.Count == 1, $"{manifest}: {hpa.Count} HorizontalPodAutoscalers target it, not one");
            var spec = hpa[0].Item2.Spec;
            Assert.True(spec.MinReplicas >= 1 && spec.MinReplicas <= spec.MaxReplicas, $"{hpa[0].d}: minReplicas {spec.MinReplicas} / maxReplicas {spec.MaxReplicas}");
            Assert.True(spec.Metrics?.Count > 0, $"{hpa[0].d}: no metrics");
            Assert.True(manifest.Spec["replicas"] is null, $"{manifest}: spec.replicas is set, so every kubectl apply resets what {hpa[0].d} scaled");
        }
        Assert.All(autoscalers, a => Assert.True(ServerDeployments(overlay).Any(d => d.Name == a.Item2.Spec.ScaleTargetRef.Name),
            $"{a.d}: scaleTargetRef {a.Item2.Spec.ScaleTargetRef.Name} is no Deployment of the overlay"));
        if (overlay == "cpu")
        {
            Assert.All(autoscalers, a => Assert.True(a.Item2.Spec.Metrics.All(m => m.Type == "Resource" && m.Resource.Name == "cpu"), $"{a.d}: the cpu overlay scales on CPU"));
        }
    }

    [Fact]
    public void The_gpu_autoscaler_scales_on_a_server_metric_that_the_prometheus_adapter_rule_serves()
    {
        var adapter = Manifests.ParseValue(File.ReadAllText(Path.Combine(Manifests.K8s, "monitoring", "prometheus-adapter-values.yaml")), "k8s/monitoring/prometheus-adapter-values.yaml")!;
        var served = ((JsonArray)adapter["rules"]!["custom"]!).Select(r => (string?)r!["name"]?["as"]).ToHashSet();
        foreach (var overlay in new[] { "gpu", "gateway-only" })
        {
            foreach (var manifest in Manifests.Render(overlay).Where(d => d.Kind == "HorizontalPodAutoscaler"))
            {
                var hpa = KubernetesTypedModels.As<V2HorizontalPodAutoscaler>(manifest);
                var pods = hpa.Spec.Metrics.Where(m => m.Type == "Pods").Select(m => m.Pods).ToList();
                Assert.True(pods.Count > 0, $"{manifest}: the gpu overlay scales on a per-pod custom metric");
                foreach (var metric in pods)
                {
                    Assert.True(served.Contains(metric.Metric.Name), $"{manifest}: custom metric {metric.Metric.Name} is not served by k8s/monitoring/prometheus-adapter-values.yaml");
                    Assert.True(MonitoringManifestTests.DeclaredMetrics().ContainsKey(metric.Metric.Name),
                        $"{manifest}: custom metric {metric.Metric.Name} is no metric ServerMetrics declares");
                    Assert.Equal("AverageValue", metric.Target.Type);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(OverlayNames))]
    public void Each_version_has_a_disruption_budget_that_a_one_pod_version_cannot_block(string overlay)
    {
        var budgets = Manifests.Render(overlay).Where(d => d.Kind == "PodDisruptionBudget").Select(d => (d, KubernetesTypedModels.As<V1PodDisruptionBudget>(d))).ToList();
        var deployments = ServerDeployments(overlay).Select(d => (d, KubernetesTypedModels.As<V1Deployment>(d))).ToList();
        foreach (var (manifest, deployment) in deployments)
        {
            var covering = budgets.Where(b => Selects(b.Item2.Spec.Selector.MatchLabels, deployment.Spec.Template.Metadata.Labels)).ToList();
            Assert.True(covering.Count == 1, $"{manifest}: {covering.Count} PodDisruptionBudgets select its pods, not one");
        }
        foreach (var (manifest, budget) in budgets)
        {
            var selected = deployments.Count(d => Selects(budget.Spec.Selector.MatchLabels, d.Item2.Spec.Template.Metadata.Labels));
            Assert.True(selected == 1, $"{manifest}: spec.selector selects {selected} Deployments' pods, not one version's");
            Assert.True(budget.Spec.MinAvailable is null && budget.Spec.MaxUnavailable?.Value == "1",
                $"{manifest}: use maxUnavailable: 1 (minAvailable would block node drains for a one-pod version)");
        }
    }

    // ---- helpers ----

    internal static IEnumerable<Manifest> ServerDeployments(string overlay) =>
        Manifests.Render(overlay).Where(d => d.Kind == "Deployment" && (string?)d.Spec["template"]?["metadata"]?["labels"]?["app"] == App);

    private static Manifest Single(IReadOnlyList<Manifest> docs, string kind, string name)
    {
        var found = docs.Where(d => d.Kind == kind && d.Name == name).ToList();
        return found.Count == 1 ? found[0] : throw new Xunit.Sdk.XunitException($"{found.Count} {kind}/{name} in {docs.FirstOrDefault()?.Source}, expected one");
    }

    private static V1Container Server(Manifest manifest, V1Deployment deployment) =>
        deployment.Spec.Template.Spec.Containers.SingleOrDefault(c => c.Name == "server")
        ?? throw new Xunit.Sdk.XunitException($"{manifest}: no container named server");

    private static V1Volume ModelVolume(Manifest manifest, V1Deployment deployment)
    {
        var mount = Server(manifest, deployment).VolumeMounts.Single(m => m.MountPath == Manifests.C("INFERENCE_MODEL_REPOSITORY"));
        return deployment.Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name);
    }

    private static bool Selects(IDictionary<string, string>? selector, IDictionary<string, string>? labels) =>
        selector is { Count: > 0 } && labels is not null && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static void CheckVolumes(Manifest manifest, V1PodSpec pod)
    {
        foreach (var volume in pod.Volumes ?? [])
        {
            // A strategic merge patch that adds a source without removing the old one leaves two: the API server refuses that.
            var sources = typeof(V1Volume).GetProperties().Where(p => p.Name != nameof(V1Volume.Name) && p.GetValue(volume) is not null).Select(p => p.Name).ToList();
            Assert.True(sources.Count == 1, $"{manifest}: volume {volume.Name} has {sources.Count} sources ({string.Join(", ", sources)})");
        }
        foreach (var container in pod.Containers.Concat(pod.InitContainers ?? []))
        {
            foreach (var mount in container.VolumeMounts ?? [])
            {
                Assert.True(pod.Volumes?.Any(v => v.Name == mount.Name) == true, $"{manifest}: containers[{container.Name}] mounts {mount.Name}, which is no volume of the pod");
            }
        }
    }

    private static void AssertProbe(Manifest manifest, string name, V1Probe? probe, int period, int timeout, int failures)
    {
        Assert.True(probe is not null, $"{manifest}: containers[server].{name} is missing");
        Assert.True(probe!.PeriodSeconds == period && probe.TimeoutSeconds == timeout && probe.FailureThreshold == failures,
            $"{manifest}: containers[server].{name} is period {probe.PeriodSeconds} / timeout {probe.TimeoutSeconds} / failureThreshold {probe.FailureThreshold}, the README's are {period}/{timeout}/{failures}");
    }

    /// <summary>An Istio duration (45s, 1m, 500ms, 1m30s) in seconds.</summary>
    internal static double Duration(string text)
    {
        var match = Regex.Match(text, @"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$");
        if (!match.Success || text.Length == 0)
        {
            throw new FormatException($"'{text}' is not a duration");
        }
        double Part(int i) => match.Groups[i].Success ? double.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
        return Part(1) * 3600 + Part(2) * 60 + Part(3) + Part(4) / 1000;
    }

    /// <summary>contract.env's INFERENCE_* keys as the server's configuration reads them from its environment.</summary>
    private static IConfiguration ContractConfiguration(bool includePortsAndRepository)
    {
        string[] fixedKeys = ["INFERENCE_HTTP_PORT", "INFERENCE_GRPC_PORT", "INFERENCE_METRICS_PORT", "INFERENCE_MODEL_REPOSITORY"];
        var environment = Manifests.Contract
            .Where(kv => kv.Key.StartsWith("INFERENCE_", StringComparison.Ordinal) && (includePortsAndRepository || !fixedKeys.Contains(kv.Key)))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        // As InferenceServerApp: AddEnvironmentVariables("INFERENCE_") (prefix dropped, __ is the section separator),
        // then the flags' environment twins over it.
        var dotnetForm = environment.ToDictionary(kv => kv.Key["INFERENCE_".Length..].Replace("__", ":", StringComparison.Ordinal), kv => (string?)kv.Value);
        return new ConfigurationBuilder()
            .AddInMemoryCollection(dotnetForm)
            .AddInMemoryCollection(CommandLine.FromEnvironment(new System.Collections.Hashtable(environment)))
            .Build();
    }

    private static async Task<HttpResponseMessage> Infer(RunningServer server, string tenantHeader, string tenant)
    {
        var data = string.Join(",", Enumerable.Range(0, 16));
        var body = $$"""{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[{{data}}]},{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[{{data}}]}]}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/simple/infer") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add(tenantHeader, tenant);
        return await server.Http.SendAsync(request);
    }
}
