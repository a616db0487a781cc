using System.Reflection;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace InferenceServer.Tests.Deployment;

/// <summary>
/// Kubernetes' built-in kinds as KubernetesClient's typed models: every built-in document we ship must deserialize
/// into its model strictly (an unknown or misplaced field is an error, as the API server's strict field validation
/// would make it). Custom resources are not built-in: only the groups listed here may appear, and other tests
/// validate them (Istio against its CRD schemas, monitoring.coreos.com and serving.kserve.io field by field).
/// </summary>
internal static class KubernetesTypedModels
{
    /// <summary>The custom resource groups the manifests may use; anything else that is not built-in is an error.</summary>
    public static readonly IReadOnlySet<string> CustomResourceGroups = new HashSet<string>(StringComparer.Ordinal)
    {
        "networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io",
        "monitoring.coreos.com", "serving.kserve.io", "gateway.networking.k8s.io",
    };

    /// <summary>apiVersion + kind of every KubernetesClient model (k8s.Models types with KubernetesEntityAttribute).</summary>
    public static readonly IReadOnlyDictionary<(string ApiVersion, string Kind), Type> Types = typeof(V1Pod).Assembly.GetTypes()
        .Select(t => (Type: t, Entity: t.GetCustomAttribute<KubernetesEntityAttribute>()))
        .Where(e => e.Entity is { Kind: not null, ApiVersion: not null } && !e.Type.Name.EndsWith("List", StringComparison.Ordinal))
        .GroupBy(e => (string.IsNullOrEmpty(e.Entity!.Group) ? e.Entity.ApiVersion : $"{e.Entity.Group}/{e.Entity.ApiVersion}", e.Entity.Kind))
        .ToDictionary(g => g.Key, g => g.First().Type);

    private static readonly MethodInfo DeserializeMethod = typeof(KubernetesYaml).GetMethods(BindingFlags.Public | BindingFlags.Static)
        .Single(m => m.Name == nameof(KubernetesYaml.Deserialize) && m.IsGenericMethodDefinition
            && m.GetParameters() is [{ ParameterType: var p0 }, { ParameterType: var p1 }] && p0 == typeof(string) && p1 == typeof(bool));

    /// <summary>
    /// A built-in group: the core group, a dotless one (apps, policy, autoscaling, batch) or *.k8s.io, except the
    /// Gateway API's, which is installed as CRDs.
    /// </summary>
    public static bool IsBuiltInGroup(string group) =>
        !CustomResourceGroups.Contains(group) && (group.Length == 0 || !group.Contains('.') || group.EndsWith(".k8s.io", StringComparison.Ordinal));

    /// <summary>
    /// Deserializes a built-in document strictly into its typed model; throws naming the manifest when the kind is
    /// unknown to KubernetesClient or a field is not in the model.
    /// </summary>
    public static IKubernetesObject Deserialize(Manifest manifest)
    {
        if (!Types.TryGetValue((manifest.ApiVersion, manifest.Kind), out var type))
        {
            throw new InvalidOperationException($"{manifest}: {manifest.ApiVersion} {manifest.Kind} is no built-in kind KubernetesClient knows (a typo, or a removed API version)");
        }
        return (IKubernetesObject)Deserialize(manifest.Body, type, manifest.ToString());
    }

    /// <summary>Deserializes a JSON body strictly into <paramref name="type"/> (any model, such as V1Container).</summary>
    public static object Deserialize(JsonObject body, Type type, string what)
    {
        try
        {
            // JSON is YAML: the body keeps the types the YAML had (a quoted "8000" stays a string and fails an int field).
            return DeserializeMethod.MakeGenericMethod(type).Invoke(null, [body.ToJsonString(), true])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new InvalidOperationException($"{what}: does not deserialize strictly into {type.Name}: {e.InnerException.Message}", e.InnerException);
        }
    }

    /// <summary>The typed model of a manifest, cast.</summary>
    public static T As<T>(Manifest manifest) where T : IKubernetesObject => (T)Deserialize(manifest);
}
