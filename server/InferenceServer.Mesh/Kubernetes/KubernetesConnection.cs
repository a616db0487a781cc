using k8s;

namespace InferenceServer.Mesh.Kubernetes;

/// <summary>How mesh control reaches the Kubernetes API: in-cluster (a pod's service account) or a kubeconfig.</summary>
public static class KubernetesConnection
{
    /// <summary>
    /// A client for <paramref name="kubeconfig"/> (and its <paramref name="context"/>) when given; otherwise the pod's
    /// in-cluster configuration when running in a pod; otherwise the default kubeconfig (<c>$KUBECONFIG</c> or
    /// <c>~/.kube/config</c>).
    /// </summary>
    public static IKubernetes Connect(string? kubeconfig = null, string? context = null)
    {
        KubernetesClientConfiguration configuration;
        if (kubeconfig is not null)
        {
            configuration = KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig, context);
        }
        else if (KubernetesClientConfiguration.IsInCluster())
        {
            configuration = KubernetesClientConfiguration.InClusterConfig();
        }
        else
        {
            // $KUBECONFIG as kubectl reads it (the first file of the list), else ~/.kube/config.
            var fromEnvironment = Environment.GetEnvironmentVariable("KUBECONFIG")?
                .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            configuration = fromEnvironment is not null
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(fromEnvironment, context)
                : KubernetesClientConfiguration.BuildConfigFromConfigFile(currentContext: context);
        }
        return new k8s.Kubernetes(configuration);
    }
}
