using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using InferenceServer.Backends;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.Tests.Deployment;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Mesh;

/// <summary>A pod of the fake mesh: its name, subset and IP (a loopback address where a real server may listen).</summary>
internal sealed record MeshPod(string Name, string Subset, string Address);

/// <summary>
/// The cluster side of the rate-limit tests: a <see cref="FakeKubernetesApi"/> seeded with the shipped VirtualService
/// and DestinationRule, the contract ConfigMap (with the test's admin port), pods and the Service's EndpointSlice.
/// </summary>
internal static class RateLimitTestMesh
{
    public const string Ns = "inference";
    public const string Host = "inference-server.inference.svc.cluster.local";

    public static JsonObject ShippedVirtualService(int canaryWeight) =>
        new VirtualServiceSplit(Host, "v1", "v2").With((JsonObject)Manifests.Istio.Single(m => m.Kind == "VirtualService" && m.Name == "inference-server").Body.DeepClone(), canaryWeight);

    public static JsonObject ShippedDestinationRule() =>
        (JsonObject)Manifests.Istio.Single(m => m.Kind == "DestinationRule" && m.Name == "inference-server" && m.Source.EndsWith("istio/destinationrule.yaml", StringComparison.Ordinal)).Body.DeepClone();

    /// <summary>The VirtualService at <paramref name="canaryWeight"/>, the DestinationRule, the contract and <paramref name="pods"/> (none ready yet).</summary>
    public static void Seed(FakeKubernetesApi api, int canaryWeight, int adminPort, IEnumerable<MeshPod> pods)
    {
        api.Put("networking.istio.io/v1", "virtualservices", ShippedVirtualService(canaryWeight));
        api.Put("networking.istio.io/v1", "destinationrules", ShippedDestinationRule());
        api.Put("v1", "configmaps", new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "ConfigMap",
            ["metadata"] = new JsonObject { ["name"] = "inference-contract", ["namespace"] = Ns },
            ["data"] = new JsonObject
            {
                ["INFERENCE_HTTP_PORT"] = "8000",
                ["INFERENCE_GRPC_PORT"] = "8001",
                ["INFERENCE_METRICS_PORT"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
        });
        foreach (var pod in pods)
        {
            api.Put("v1", "pods", new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Pod",
                ["metadata"] = new JsonObject
                {
                    ["name"] = pod.Name,
                    ["namespace"] = Ns,
                    ["labels"] = new JsonObject { ["app"] = "inference-server", ["version"] = pod.Subset },
                },
                ["status"] = new JsonObject { ["podIP"] = pod.Address },
            });
        }
        SetReady(api, []);
        // A pod of another app in the namespace: never counted.
        api.Put("discovery.k8s.io/v1", "endpointslices", Slice("other-abc", "other", [(new MeshPod("other-0", "v1", "10.9.9.9"), true)]));
    }

    /// <summary>Replaces the Service's EndpointSlice: <paramref name="ready"/> ready, <paramref name="notReady"/> listed as not ready.</summary>
    public static void SetReady(FakeKubernetesApi api, IEnumerable<MeshPod> ready, IEnumerable<MeshPod>? notReady = null) =>
        api.Put("discovery.k8s.io/v1", "endpointslices", Slice("inference-server-abcde", "inference-server",
            ready.Select(p => (p, true)).Concat((notReady ?? []).Select(p => (p, false)))));

    private static JsonObject Slice(string name, string service, IEnumerable<(MeshPod Pod, bool Ready)> endpoints) => new()
    {
        ["apiVersion"] = "discovery.k8s.io/v1",
        ["kind"] = "EndpointSlice",
        ["metadata"] = new JsonObject
        {
            ["name"] = name,
            ["namespace"] = Ns,
            ["labels"] = new JsonObject { ["kubernetes.io/service-name"] = service },
        },
        ["addressType"] = "IPv4",
        ["endpoints"] = new JsonArray(endpoints.Select(e => (JsonNode)new JsonObject
        {
            ["addresses"] = new JsonArray(e.Pod.Address),
            ["conditions"] = new JsonObject { ["ready"] = e.Ready, ["serving"] = e.Ready, ["terminating"] = false },
            ["targetRef"] = new JsonObject { ["kind"] = "Pod", ["name"] = e.Pod.Name, ["namespace"] = Ns },
        }).ToArray()),
        ["ports"] = new JsonArray(new JsonObject { ["name"] = "http-rest", ["port"] = 8000, ["protocol"] = "TCP" }),
    };

    /// <summary>A kubeconfig pointing at the fake, for meshctl and the server option.</summary>
    public static string Kubeconfig(FakeKubernetesApi api)
    {
        var path = Path.Combine(Paths.NewTempDirectory("kubeconfig"), "config");
        File.WriteAllText(path, $$"""
            apiVersion: v1
            kind: Config
            clusters:
              - name: fake
                cluster: {server: "{{api.Url}}"}
            users:
              - name: test
                user: {token: test-token}
            contexts:
              - name: fake
                context: {cluster: fake, user: test, namespace: {{Ns}}}
            current-context: fake
            """);
        return path;
    }

    /// <summary>A port free on every address of <paramref name="addresses"/> (the shared admin port of the "pods").</summary>
    public static int FreePort(IEnumerable<string> addresses)
    {
        for (var attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Parse("127.0.0.2"), 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            if (addresses.All(a => IsFree(a, port)) || attempt > 20)
            {
                return port;
            }
        }
    }

    private static bool IsFree(string address, int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Parse(address), port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>A real server as the pod <paramref name="pod"/>: bound to its address, with the shared admin port and the
    /// test model <c>simple</c> (a pass-through engine).</summary>
    public static async Task<PodServer> StartPodAsync(MeshPod pod, int adminPort, IReadOnlyDictionary<string, string?>? extra = null)
    {
        var repo = Paths.NewTempDirectory("ratelimit-pod");
        GateBackend.WriteModel(repo, "simple", "max_batch_size: 0\n");
        var configuration = new Dictionary<string, string?>
        {
            ["Server:BindAddress"] = pod.Address,
            ["Server:MetricsPort"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Server:AccessLog"] = "false",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }
        var server = await RunningServer.StartAsync(repo, configuration, services => services.AddSingleton<IModelBackend, GateBackend>());
        return new PodServer(pod, server, adminPort);
    }
}

/// <summary>A running server standing in for a pod, with clients of its REST and admin ports on its own address.</summary>
internal sealed class PodServer(MeshPod pod, RunningServer server, int adminPort) : IAsyncDisposable
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 2], \"data\": [1, 2]}]}");

    public MeshPod Pod => pod;

    public RunningServer Server => server;

    public HttpClient Rest { get; } = new() { BaseAddress = new Uri($"http://{pod.Address}:{server.Endpoints.HttpPort}") };

    public HttpClient Admin { get; } = new() { BaseAddress = new Uri($"http://{pod.Address}:{adminPort}") };

    /// <summary>The model's limits as the admin API shows them: (requests_per_second, burst), null when unset.</summary>
    public async Task<(double? Rate, int? Burst)> LimitsAsync(string model = "simple")
    {
        var limits = JsonNode.Parse(await Admin.GetStringAsync($"/v2/admin/limits/{model}"))!["limits"]!;
        return (limits["requests_per_second"]?.GetValue<double>(), limits["burst"]?.GetValue<int>());
    }

    /// <summary>Waits (bounded) until the model's limits are <paramref name="expected"/>.</summary>
    public async Task WaitForLimitsAsync(double? rate, int? burst, string model = "simple")
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        (double? Rate, int? Burst) seen;
        while ((seen = await LimitsAsync(model)) != (rate, burst))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{pod.Name}: limits of {model} stayed {seen}, expected {(rate, burst)}");
            await Task.Delay(20);
        }
    }

    /// <summary>Sends <paramref name="count"/> inferences at once; returns the responses' statuses and the 429s' headers.</summary>
    public async Task<IReadOnlyList<(HttpStatusCode Status, string? RetryAfter, string? Limit)>> BurstAsync(int count, string model = "simple")
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, count).Select(_ =>
            Rest.PostAsync($"/v2/models/{model}/infer", new ByteArrayContent(Body) { Headers = { ContentType = new("application/json") } })));
        try
        {
            return responses.Select(r => (r.StatusCode,
                r.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                r.Headers.TryGetValues("x-ratelimit-limit", out var v) ? v.First() : null)).ToList();
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Rest.Dispose();
        Admin.Dispose();
        await server.DisposeAsync();
    }
}
