using InferenceServer.Hosting;
using InferenceServer.Mesh;
using InferenceServer.Tests.Deployment;
using k8s.Models;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Mesh;

/// <summary>
/// The RBAC meshctl and the in-pod option need: k8s/base/meshctl-rbac.yaml (in every overlay) and the
/// k8s/components/self-ratelimit component, rendered through k8s/examples/cpu-self-ratelimit; every document strictly
/// typed, every API call the code makes allowed, and the pods' environment a valid configuration of the option.
/// </summary>
public sealed class SelfRateLimitManifestTests
{
    private static readonly Lazy<IReadOnlyList<Manifest>> Example = new(() =>
        Manifests.Parse(Manifests.Kustomize(Path.Combine(Manifests.K8s, "examples", "cpu-self-ratelimit")), "k8s/examples/cpu-self-ratelimit (rendered)"));

    private static V1Role Role(IEnumerable<Manifest> docs, string name) =>
        KubernetesTypedModels.As<V1Role>(docs.Single(d => d.Kind == "Role" && d.Name == name));

    private static void AssertAllows(V1Role role, string group, string resource, params string[] verbs)
    {
        foreach (var verb in verbs)
        {
            Assert.True(role.Rules.Any(r => r.ApiGroups.Contains(group) && r.Resources.Contains(resource) && r.Verbs.Contains(verb)),
                $"Role {role.Metadata.Name} does not allow {verb} on {resource}.{group}");
        }
    }

    private static void AssertBinds(IEnumerable<Manifest> docs, string role, string serviceAccount)
    {
        var bindings = docs.Where(d => d.Kind == "RoleBinding").Select(KubernetesTypedModels.As<V1RoleBinding>).ToList();
        Assert.True(bindings.Any(b => b.RoleRef.Kind == "Role" && b.RoleRef.Name == role
                && b.Subjects.Any(s => s.Kind == "ServiceAccount" && s.Name == serviceAccount && s.NamespaceProperty == "inference")),
            $"no RoleBinding binds Role {role} to ServiceAccount inference/{serviceAccount}");
    }

    [Fact]
    public void Every_document_of_the_example_deserializes_strictly()
    {
        foreach (var manifest in Example.Value.Where(m => KubernetesTypedModels.IsBuiltInGroup(m.Group)))
        {
            KubernetesTypedModels.Deserialize(manifest);
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_overlay_has_meshctls_service_account_and_the_role_for_its_calls(string overlay)
    {
        var docs = Manifests.Render(overlay);
        Assert.Single(docs, d => d.Kind == "ServiceAccount" && d.Name == "meshctl");
        var role = Role(docs, "meshctl");
        AssertAllows(role, "networking.istio.io", "virtualservices", "get", "list", "watch", "patch");
        AssertAllows(role, "networking.istio.io", "envoyfilters", "get", "patch", "create");
        AssertAllows(role, "networking.istio.io", "destinationrules", "get");
        AssertAllows(role, "discovery.k8s.io", "endpointslices", "list", "watch");
        AssertAllows(role, "", "pods", "list", "watch");
        AssertAllows(role, "", "configmaps", "get");
        AssertBinds(docs, "meshctl", "meshctl");
        // The server's own pods still get no token without the component.
        Assert.All(docs.Where(d => d.Kind == "Deployment").Select(KubernetesTypedModels.As<V1Deployment>),
            d => Assert.False(d.Spec.Template.Spec.AutomountServiceAccountToken ?? true, $"{d.Metadata.Name} mounts a token without the component"));
    }

    public static TheoryData<string> Overlays() => new(Manifests.Overlays);

    [Fact]
    public void The_component_lets_the_server_read_the_mesh_and_configures_the_option_from_the_downward_api()
    {
        var docs = Example.Value;
        var role = Role(docs, "inference-server-self-ratelimit");
        AssertAllows(role, "discovery.k8s.io", "endpointslices", "list", "watch");
        AssertAllows(role, "", "pods", "list", "watch");
        AssertAllows(role, "networking.istio.io", "virtualservices", "get", "list", "watch");
        Assert.DoesNotContain(role.Rules, r => r.Verbs.Any(v => v is "create" or "update" or "patch" or "delete"));
        AssertBinds(docs, "inference-server-self-ratelimit", "inference-server");

        var deployments = docs.Where(d => d.Kind == "Deployment").Select(KubernetesTypedModels.As<V1Deployment>).ToList();
        Assert.Equal(2, deployments.Count);
        foreach (var deployment in deployments)
        {
            var pod = deployment.Spec.Template;
            Assert.True(pod.Spec.AutomountServiceAccountToken == true, $"{deployment.Metadata.Name}: the option needs the service-account token");
            Assert.Equal("inference-server", pod.Spec.ServiceAccountName);
            var env = pod.Spec.Containers.Single(c => c.Name == "server").Env;
            Assert.Equal("metadata.labels['version']", env.Single(e => e.Name == "INFERENCE_SELF_RATE_LIMIT_SUBSET").ValueFrom.FieldRef.FieldPath);
            Assert.Equal("metadata.namespace", env.Single(e => e.Name == "INFERENCE_Mesh__SelfRateLimit__Namespace").ValueFrom.FieldRef.FieldPath);

            // The environment as the kubelet resolves it, read the way the server reads it, is a valid configuration.
            var resolved = env.ToDictionary(e => e.Name, e => e.Value ?? (e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" ? "inference" : pod.Metadata.Labels["version"]));
            Assert.All(resolved.Keys, key => Assert.True(CommandLine.Flags.Any(f => f.Environment == key) || key.StartsWith("INFERENCE_Mesh__", StringComparison.Ordinal), $"{key} is no setting"));
            var configuration = new ConfigurationBuilder()
                .AddInMemoryCollection(CommandLine.FromEnvironment(new System.Collections.Hashtable(resolved)))
                .AddInMemoryCollection(resolved.Where(kv => kv.Key.StartsWith("INFERENCE_Mesh__", StringComparison.Ordinal))
                    .Select(kv => new KeyValuePair<string, string?>(kv.Key["INFERENCE_".Length..].Replace("__", ":", StringComparison.Ordinal), kv.Value)))
                .Build();
            var options = configuration.GetSection(SelfRateLimitOptions.Section).Get<SelfRateLimitOptions>()!;
            Assert.True(options.Enabled);
            Assert.Equal(pod.Metadata.Labels["version"], options.Subset);
            Assert.Equal("inference", options.Namespace);
            Assert.NotEmpty(options.Validate());
        }
    }
}
