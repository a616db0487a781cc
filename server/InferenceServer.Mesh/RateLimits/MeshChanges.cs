using System.Threading.Channels;
using k8s;
using InferenceServer.Mesh.Kubernetes;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>
/// Watches what the shares depend on — the Service's EndpointSlices, the pods and the VirtualService — and writes a
/// line naming the change to a channel on every event. A watch that ends (the API server closes watches after a while)
/// or fails is started again after a pause; its initial events then cause one more sync, which is harmless.
/// </summary>
public static class MeshChanges
{
    public static Task WatchAsync(IKubernetes client, RateLimitTarget target, ChannelWriter<string> changes, Action<string>? onError, CancellationToken cancellationToken) =>
        Task.WhenAll(
            Loop("EndpointSlices", async ct =>
            {
                await foreach (var (type, slice) in client.DiscoveryV1.WatchListNamespacedEndpointSliceAsync(
                    target.Namespace, labelSelector: target.EndpointSliceSelector, cancellationToken: ct))
                {
                    changes.TryWrite($"EndpointSlice {slice.Metadata?.Name} {type}");
                }
            }, onError, cancellationToken),
            Loop("pods", async ct =>
            {
                await foreach (var (type, pod) in client.CoreV1.WatchListNamespacedPodAsync(target.Namespace, labelSelector: target.PodSelector, cancellationToken: ct))
                {
                    changes.TryWrite($"Pod {pod.Metadata?.Name} {type}");
                }
            }, onError, cancellationToken),
            Loop("VirtualService", async ct =>
            {
                await foreach (var (type, _) in client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                    IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.VirtualServices, fieldSelector: "metadata.name=" + target.VirtualService, cancellationToken: ct))
                {
                    changes.TryWrite($"VirtualService {target.VirtualService} {type}");
                }
            }, onError, cancellationToken));

    private static async Task Loop(string what, Func<CancellationToken, Task> watch, Action<string>? onError, CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await watch(cancellationToken);
                failures = 0; // the API server ended the watch normally (they time out): watch again at once
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // A watch must outlive whatever one attempt throws (API down, bad event, timeout): report and retry.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failures++;
                onError?.Invoke($"watch of {what} failed: {e.Message}; watching again");
            }
            try
            {
                // 1 s after a normal end or a first failure, doubling up to 30 s while the API keeps failing.
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Max(0, failures - 1)))), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Waits for the next change (or <paramref name="resync"/>, whichever first), then for <paramref name="debounce"/>
    /// more so a burst of events (a rollout moves many pods) makes one sync; returns what changed (empty on a resync).
    /// </summary>
    public static async Task<IReadOnlyList<string>> NextAsync(ChannelReader<string> changes, TimeSpan debounce, TimeSpan resync, CancellationToken cancellationToken)
    {
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(resync);
            try
            {
                await changes.WaitToReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return [];
            }
        }
        await Task.Delay(debounce, cancellationToken);
        var seen = new List<string>();
        while (changes.TryRead(out var change))
        {
            seen.Add(change);
        }
        return seen;
    }
}
