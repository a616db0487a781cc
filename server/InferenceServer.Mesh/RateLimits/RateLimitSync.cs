using System.Globalization;
using System.Net;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using InferenceServer.Mesh.Kubernetes;

namespace InferenceServer.Mesh.RateLimits;

/// <summary>What <see cref="RateLimitSync"/> applies and how.</summary>
public sealed record RateLimitSyncOptions
{
    public RateLimitTarget Target { get; init; } = new();
    public IReadOnlyList<ModelBudget> Budgets { get; init; } = [];
    /// <summary>Burst = share x this factor (rounded up).</summary>
    public double BurstFactor { get; init; } = 1;
    /// <summary>Set each ready pod's limits through its admin API.</summary>
    public bool ApplyAdmin { get; init; } = true;
    /// <summary>Server-side apply the per-subset local-rate-limit EnvoyFilters.</summary>
    public bool ApplyEnvoyFilter { get; init; }
    /// <summary>The pods' admin port; null: the contract ConfigMap's INFERENCE_METRICS_PORT (8002 without one).</summary>
    public int? AdminPort { get; init; }
    /// <summary>Print what would be applied, change nothing.</summary>
    public bool DryRun { get; init; }
    public string ContractConfigMap { get; init; } = "inference-contract";
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>With --watch: a sync this often even without a change, so a pod that failed is retried.</summary>
    public TimeSpan Resync { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>The outcome of one sync: the plan and the pods (or filters) that could not be set.</summary>
public sealed record SyncResult(RateLimitPlan Plan, IReadOnlyList<string> Failures);

/// <summary>
/// <c>meshctl ratelimit sync</c>: reads the mesh (<see cref="MeshState"/>), computes every pod's share of each budget
/// (<see cref="RateLimitPlan"/>) and applies it through the pods' admin API and/or the per-subset EnvoyFilters. A pod
/// that fails is reported and the others are still applied; with <see cref="WatchAsync"/> it is retried on the next
/// round. Every line of progress goes to <c>report</c>.
/// </summary>
public sealed class RateLimitSync(IKubernetes client, HttpClient http, RateLimitSyncOptions options, Action<string> report)
{
    public async Task<SyncResult> SyncOnceAsync(CancellationToken cancellationToken)
    {
        var state = await MeshState.ReadAsync(client, options.Target, cancellationToken);
        var plan = RateLimitPlan.Compute(state, options.Budgets, options.BurstFactor);
        foreach (var line in plan.Describe())
        {
            report(line);
        }
        var failures = new List<string>();
        var ports = await ContractPortsAsync(cancellationToken);
        if (options.ApplyAdmin)
        {
            await ApplyAdminAsync(plan, ports.Admin, failures, cancellationToken);
        }
        if (options.ApplyEnvoyFilter)
        {
            await ApplyFiltersAsync(state, plan, [ports.Http, ports.Grpc], failures, cancellationToken);
        }
        return new SyncResult(plan, failures);
    }

    /// <summary>Syncs, then again on every change (debounced) and every <see cref="RateLimitSyncOptions.Resync"/>, until cancelled.</summary>
    public async Task WatchAsync(CancellationToken cancellationToken)
    {
        var changes = Channel.CreateUnbounded<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watching = MeshChanges.WatchAsync(client, options.Target, changes.Writer, report, stop.Token);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await SyncOnceAsync(cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
#pragma warning disable CA1031 // --watch keeps running through a failed round (API down, a bad object): report, retry next round.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    report($"sync failed: {Message(e)}; trying again on the next change");
                }
                var seen = await MeshChanges.NextAsync(changes.Reader, options.Debounce, options.Resync, cancellationToken);
                report(seen.Count == 0 ? "resync" : $"changed: {string.Join(", ", seen.Distinct().Take(5))}{(seen.Distinct().Count() > 5 ? ", ..." : "")}");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync();
            await watching;
        }
    }

    private async Task ApplyAdminAsync(RateLimitPlan plan, int port, List<string> failures, CancellationToken cancellationToken)
    {
        var admin = new AdminLimitClient(http, port);
        // Pods in parallel: one slow pod does not hold the others back.
        var results = await Task.WhenAll(plan.Pods.Select(async pod =>
        {
            var lines = new List<(string Line, bool Failed)>();
            foreach (var budget in plan.Budgets)
            {
                if (plan.ShareOf(pod.Subset, budget.Model) is not { } share)
                {
                    continue;
                }
                var what = $"admin {pod.Name} ({pod.Address}) {budget.Model}";
                if (options.DryRun)
                {
                    lines.Add(($"{what}: would PUT {admin.LimitsUri(pod.Address, budget.Model)} {AdminLimitClient.Body(null, share).ToJsonString()}", false));
                    continue;
                }
                try
                {
                    await admin.ApplyAsync(pod.Address, budget.Model, share, cancellationToken);
                    lines.Add(($"{what}: {share}", false));
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException { InnerException: TimeoutException } or System.Text.Json.JsonException)
                {
                    lines.Add(($"{what}: FAILED: {Message(e)} (retried on the next sync)", true));
                }
            }
            return lines;
        }));
        foreach (var (line, failed) in results.SelectMany(r => r))
        {
            report(line);
            if (failed)
            {
                failures.Add(line);
            }
        }
    }

    private async Task ApplyFiltersAsync(MeshState state, RateLimitPlan plan, int[] ports, List<string> failures, CancellationToken cancellationToken)
    {
        foreach (var subset in plan.Subsets)
        {
            var name = LocalRateLimitFilter.NameOf(subset.Subset);
            if (subset.Combined is not { } bucket)
            {
                report($"envoyfilter {name}: left as it is (a model has nothing assigned in {subset.Subset})");
                continue;
            }
            var description = string.Join(",", subset.Shares.Select(s => $"{s.Key}={s.Value!.RequestsPerSecond}"));
            var filter = LocalRateLimitFilter.Build(options.Target.Namespace, subset.Subset, options.Target.PodLabels, state.SubsetLabels[subset.Subset], bucket, ports, description);
            if (options.DryRun)
            {
                report($"envoyfilter {name}: would apply (fieldManager {IstioApi.FieldManager}) {filter.ToJsonString()}");
                continue;
            }
            try
            {
                await LocalRateLimitFilter.ApplyAsync(client, filter, cancellationToken);
                report($"envoyfilter {name}: token bucket {bucket.RequestsPerSecond}/s, max {bucket.Burst} ({description})");
            }
            catch (HttpOperationException e)
            {
                var line = $"envoyfilter {name}: FAILED: {Message(e)}";
                report(line);
                failures.Add(line);
            }
        }
    }

    private async Task<(int Http, int Grpc, int Admin)> ContractPortsAsync(CancellationToken cancellationToken)
    {
        IDictionary<string, string>? data = null;
        try
        {
            data = (await client.CoreV1.ReadNamespacedConfigMapAsync(options.ContractConfigMap, options.Target.Namespace, cancellationToken: cancellationToken)).Data;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden)
        {
            // No contract ConfigMap: the server's defaults.
        }
        int Port(string key, int fallback) =>
            data is not null && data.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) ? port : fallback;
        return (Port("INFERENCE_HTTP_PORT", 8000), Port("INFERENCE_GRPC_PORT", 8001), options.AdminPort ?? Port("INFERENCE_METRICS_PORT", 8002));
    }

    internal static string Message(Exception e) => e is HttpOperationException h
        ? $"{(int)h.Response.StatusCode} {h.Response.Content?.Trim()}"
        : e.Message;
}
