using System.CommandLine;
using System.Globalization;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Mesh.RateLimits;

namespace InferenceServer.MeshCtl;

/// <summary><c>meshctl ratelimit sync</c>: per-pod shares of global per-model budgets, by subset weight and ready replicas.</summary>
internal static class RateLimitCommands
{
    public static Command Build()
    {
        var group = new Command("ratelimit", "replica-aware rate limits: each pod's share of a global per-model budget");
        group.Subcommands.Add(Sync());
        return group;
    }

    private static Command Sync()
    {
        var defaults = new RateLimitTarget();
        var models = new Option<string[]>("--model") { Description = "a global budget MODEL=REQUESTS_PER_SECOND (e.g. simple=100); repeatable", Arity = ArgumentArity.OneOrMore };
        var apply = new Option<string>("--apply") { Description = "where the shares go: admin (each pod's admin API), envoyfilter (per-subset local-rate-limit EnvoyFilters) or both", DefaultValueFactory = _ => "admin" };
        var watch = new Option<bool>("--watch") { Description = "keep running: sync again on every change of the EndpointSlices, pods or VirtualService" };
        var dryRun = new Option<bool>("--dry-run") { Description = "print the shares and what would be applied; change nothing" };
        var burstFactor = new Option<double>("--burst-factor") { Description = "each pod's burst = its share x this factor, rounded up", DefaultValueFactory = _ => 1 };
        var adminPort = new Option<int?>("--admin-port") { Description = "the pods' admin port (default: INFERENCE_METRICS_PORT of the inference-contract ConfigMap, else 8002)" };
        var ns = new Option<string>("--namespace", "-n") { Description = "the namespace", DefaultValueFactory = _ => defaults.Namespace };
        var service = new Option<string>("--service") { Description = "the Service whose EndpointSlices list the pods", DefaultValueFactory = _ => defaults.Service };
        var podSelector = new Option<string>("--pod-selector") { Description = "label selector of the server's pods", DefaultValueFactory = _ => defaults.PodSelector };
        var virtualService = new Option<string>("--virtual-service") { Description = "the VirtualService with the weighted split", DefaultValueFactory = _ => defaults.VirtualService };
        var destinationRule = new Option<string>("--destination-rule") { Description = "the DestinationRule defining the subsets", DefaultValueFactory = _ => defaults.DestinationRule };
        var host = new Option<string>("--host") { Description = "the host the split routes send to", DefaultValueFactory = _ => defaults.Host };
        var stable = new Option<string>("--stable") { Description = "the stable subset", DefaultValueFactory = _ => defaults.Stable };
        var canary = new Option<string>("--canary") { Description = "the canary subset", DefaultValueFactory = _ => defaults.Canary };
        var subsetLabel = new Option<string?>("--subset-label") { Description = "take a subset to be the pods with this label equal to its name, instead of reading the DestinationRule" };
        var resync = new Option<double>("--resync-seconds") { Description = "with --watch: sync this often even without a change, so failed pods are retried", DefaultValueFactory = _ => 30 };
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)" };
        var context = new Option<string?>("--context") { Description = "kubeconfig context" };

        var command = new Command("sync", "compute each pod's share of the budgets and apply it (admin API and/or EnvoyFilter)");
        foreach (var option in new Option[] { models, apply, watch, dryRun, burstFactor, adminPort, ns, service, podSelector, virtualService, destinationRule, host, stable, canary, subsetLabel, resync, kubeconfig, context })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (ParseResult r, CancellationToken cancellationToken) =>
        {
            var output = r.InvocationConfiguration.Output;
            var error = r.InvocationConfiguration.Error;
            IReadOnlyList<ModelBudget> budgets;
            try
            {
                budgets = ModelBudget.ParseAll(r.GetValue(models) ?? []);
            }
            catch (FormatException e)
            {
                return Usage(error, e.Message);
            }
            if (budgets.Count == 0)
            {
                return Usage(error, "give at least one budget: --model MODEL=REQUESTS_PER_SECOND (e.g. --model simple=100)");
            }
            var mode = r.GetValue(apply);
            if (mode is not ("admin" or "envoyfilter" or "both"))
            {
                return Usage(error, $"--apply must be admin, envoyfilter or both, not '{mode}'");
            }
            var factor = r.GetValue(burstFactor);
            if (!double.IsFinite(factor) || factor <= 0)
            {
                return Usage(error, $"--burst-factor must be a positive number, not {factor.ToString(CultureInfo.InvariantCulture)}");
            }
            if (r.GetValue(adminPort) is { } port && port is < 1 or > 65535)
            {
                return Usage(error, $"--admin-port must be a port number (1-65535), not {port}");
            }
            var resyncSeconds = r.GetValue(resync);
            if (!double.IsFinite(resyncSeconds) || resyncSeconds <= 0)
            {
                return Usage(error, $"--resync-seconds must be positive, not {resyncSeconds.ToString(CultureInfo.InvariantCulture)}");
            }
            var options = new RateLimitSyncOptions
            {
                Target = new RateLimitTarget
                {
                    Namespace = r.GetValue(ns)!,
                    Service = r.GetValue(service)!,
                    PodSelector = r.GetValue(podSelector)!,
                    VirtualService = r.GetValue(virtualService)!,
                    DestinationRule = r.GetValue(destinationRule)!,
                    Host = r.GetValue(host)!,
                    Stable = r.GetValue(stable)!,
                    Canary = r.GetValue(canary)!,
                    SubsetLabel = r.GetValue(subsetLabel),
                },
                Budgets = budgets,
                BurstFactor = factor,
                ApplyAdmin = mode is "admin" or "both",
                ApplyEnvoyFilter = mode is "envoyfilter" or "both",
                AdminPort = r.GetValue(adminPort),
                DryRun = r.GetValue(dryRun),
                Resync = TimeSpan.FromSeconds(resyncSeconds),
            };
            k8s.IKubernetes client;
            try
            {
                client = KubernetesConnection.Connect(r.GetValue(kubeconfig), r.GetValue(context));
            }
            catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or FileNotFoundException or IOException)
            {
                await error.WriteLineAsync($"error: cannot connect to Kubernetes: {e.Message}");
                return 2;
            }
            using (client)
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
            {
                var sync = new RateLimitSync(client, http, options, line => output.WriteLine(line));
                if (r.GetValue(watch))
                {
                    await sync.WatchAsync(cancellationToken);
                    return 0;
                }
                try
                {
                    var result = await sync.SyncOnceAsync(cancellationToken);
                    if (result.Failures.Count > 0)
                    {
                        await error.WriteLineAsync($"error: {result.Failures.Count} of the updates failed (see above)");
                        return 1;
                    }
                    return 0;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return 1;
                }
#pragma warning disable CA1031 // The tool's last line of defence: a message, never a stack trace.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    await error.WriteLineAsync($"error: {RateLimitSync.Message(e)}");
                    return 1;
                }
            }
        });
        return command;
    }

    private static int Usage(TextWriter error, string message)
    {
        error.WriteLine($"error: {message}");
        return 2;
    }
}
