using System.Threading.Channels;
using InferenceServer.Admission;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Mesh.RateLimits;
using k8s;

namespace InferenceServer.Mesh;

/// <summary>
/// Keeps this pod's per-model rate limits at its share of the global budgets (<see cref="SelfRateLimitOptions"/>):
/// on every change of the Service's EndpointSlices, the pods or the VirtualService (debounced, and every
/// ResyncSeconds) it computes the shares the way <c>meshctl ratelimit sync</c> does and sets its own subset's share in
/// the <see cref="AdmissionController"/>, as the admin API's PUT would (keeping the override's other fields). When its
/// subset has no weight or no ready pod, nothing is assigned and its limits stay as they are.
/// </summary>
internal sealed class SelfRateLimitService(
    SelfRateLimitOptions options, AdmissionController admission, ILogger<SelfRateLimitService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var budgets = options.Validate();
        var ns = options.Namespace ?? (File.Exists(SelfRateLimitOptions.ServiceAccountNamespaceFile)
            ? (await File.ReadAllTextAsync(SelfRateLimitOptions.ServiceAccountNamespaceFile, stoppingToken)).Trim()
            : "inference");
        var target = options.Target(ns);
        IKubernetes client;
        try
        {
            client = KubernetesConnection.Connect(options.Kubeconfig);
        }
#pragma warning disable CA1031 // Whatever the configuration's fault, the server keeps serving with its configured limits.
        catch (Exception e)
#pragma warning restore CA1031
        {
            logger.LogError("self rate limit: cannot connect to the Kubernetes API ({Error}); the limits stay as configured", e.Message);
            return;
        }
        using (client)
        {
            var changes = Channel.CreateUnbounded<string>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var watching = MeshChanges.WatchAsync(client, target, changes.Writer, message => logger.LogWarning("self rate limit: {Message}", message), stop.Token);
            try
            {
                while (!stoppingToken.IsCancellationRequested)
                {
                    await ApplyOnceAsync(client, target, budgets, stoppingToken);
                    await MeshChanges.NextAsync(changes.Reader, TimeSpan.FromSeconds(options.DebounceSeconds), TimeSpan.FromSeconds(options.ResyncSeconds), stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            finally
            {
                await stop.CancelAsync();
                await watching;
            }
        }
    }

    private async Task ApplyOnceAsync(IKubernetes client, RateLimitTarget target, IReadOnlyList<ModelBudget> budgets, CancellationToken cancellationToken)
    {
        RateLimitPlan plan;
        try
        {
            plan = RateLimitPlan.Compute(await MeshState.ReadAsync(client, target, cancellationToken), budgets, options.BurstFactor);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
#pragma warning disable CA1031 // A failed round must never stop the host (a faulted BackgroundService does): log, retry next change.
        catch (Exception e)
#pragma warning restore CA1031
        {
            logger.LogWarning("self rate limit: cannot read the mesh ({Error}); the limits stay as they are", RateLimitSync.Message(e));
            return;
        }
        foreach (var budget in budgets)
        {
            if (plan.ShareOf(options.Subset!, budget.Model) is not { } share)
            {
                continue;
            }
            var current = admission.Overrides.GetValueOrDefault(budget.Model);
            if (current?.RequestsPerSecond == share.RequestsPerSecond && current.Burst == share.Burst)
            {
                continue;
            }
            admission.SetModel(budget.Model, (current ?? new AdmissionLimits()) with { RequestsPerSecond = share.RequestsPerSecond, Burst = share.Burst });
            var subset = plan.SubsetOf(options.Subset!)!;
            logger.LogInformation("self rate limit: {Model} now {Rate} rps (burst {Burst}): budget {Budget} x {Weight}% over {Ready} ready pods of {Subset}",
                budget.Model, share.RequestsPerSecond, share.Burst, budget.RequestsPerSecond, subset.Weight, subset.Ready, subset.Subset);
        }
    }
}
