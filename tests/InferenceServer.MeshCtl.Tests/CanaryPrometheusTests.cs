using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using InferenceServer.Backends;
using InferenceServer.Mesh.Canary;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.MeshCtl;
using InferenceServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Mesh;

/// <summary>
/// <c>meshctl canary start</c> end to end with a real Prometheus: two real servers play the v1 and v2 pods (scraped
/// with the <c>namespace</c>/<c>pod</c> target labels the kubernetes-pods job adds), the fake Kubernetes API holds the
/// VirtualService, and a traffic driver plays the mesh: it reads the current weights from the fake's VirtualService
/// and sends each request to v1 or v2 in that proportion.
/// </summary>
public sealed class CanaryPrometheusTests
{
    private static readonly VirtualServiceSplit Split = new(CanaryControllerTests.Host, "v1", "v2");

    private static readonly byte[] Body = Encoding.UTF8.GetBytes("{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 2], \"data\": [1, 2]}]}");

    [Fact]
    public async Task Good_traffic_promotes_the_canary_through_every_step()
    {
        await using var rig = await Rig.StartAsync("canary_good", canaryFails: false);
        var (code, output, error) = await rig.RunMeshctlAsync();

        Assert.True(code == 0, $"exit {code}\n{output}\n{error}");
        var stored = rig.VirtualService();
        Assert.Equal((0, 100), Split.Read(stored));
        var state = CanaryControllerTests.StateOf(stored);
        Assert.Equal(CanaryPhase.Succeeded, state.Phase);
        Assert.Equal([20, 50, 100, 100], state.History.Select(e => e.CanaryWeight));
        Assert.Equal([20, 50, 100], rig.AppliedCanaryWeights().Distinct());
        // Both sources had data and passed: the server's own metrics and the (emulated) sidecars' istio_requests_total.
        var analysis = state.LastAnalysis!;
        Assert.Equal(AnalysisVerdict.Passed, analysis.Verdict);
        Assert.Equal(["server requests", "server error rate", "server p95 latency", "istio requests", "istio error rate"], analysis.Checks.Select(c => c.Name));
        Assert.All(analysis.Checks, c => Assert.True(c.Outcome == CheckOutcome.Passed, c.Describe()));
        Assert.True(rig.Sent("v2") > 0 && rig.Sent("v1") > 0, $"v1 {rig.Sent("v1")}, v2 {rig.Sent("v2")}");
    }

    [Fact]
    public async Task A_failing_canary_model_is_rolled_back_to_100_0_naming_the_error_rate()
    {
        await using var rig = await Rig.StartAsync("canary_bad", canaryFails: true);
        var (code, output, error) = await rig.RunMeshctlAsync();

        Assert.True(code == 1, $"exit {code}\n{output}\n{error}");
        Assert.Contains("rolled back: v1 has 100% again", output);
        var stored = rig.VirtualService();
        Assert.Equal((100, 0), Split.Read(stored));
        var state = CanaryControllerTests.StateOf(stored);
        Assert.Equal(CanaryPhase.Failed, state.Phase);
        // Whichever source first has enough requests in its window names it (both see every canary request fail).
        Assert.Matches(@"(server|istio) error rate 100% \(> max 5%\)", state.Reason);
        Assert.DoesNotContain("p95", state.Reason);
        Assert.Equal([20, 0], rig.AppliedCanaryWeights().Distinct());
    }

    /// <summary>Prometheus, two servers, the fake API server, the traffic driver and its emulated sidecar metrics.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<(string Subset, int Code), long> _istio = new();
        private readonly List<IAsyncDisposable> _owned = [];
        private FakeKubernetesApi _api = null!;
        private PrometheusProcess _prometheus = null!;
        private Task _traffic = Task.CompletedTask;

        public static async Task<Rig> StartAsync(string name, bool canaryFails)
        {
            var rig = new Rig();
            try
            {
                await rig.InitializeAsync(name, canaryFails);
                return rig;
            }
            catch
            {
                await rig.DisposeAsync();
                throw;
            }
        }

        private readonly Dictionary<string, (RunningServer Server, string Model)> _pods = new();

        private async Task InitializeAsync(string name, bool canaryFails)
        {
            foreach (var subset in new[] { "v1", "v2" })
            {
                // GateBackend's states are per model name, process-wide: each pod gets a model of its own name.
                var repo = Paths.NewTempDirectory($"{name}-{subset}");
                var model = $"{name}_{subset}";
                GateBackend.WriteModel(repo, model, "max_batch_size: 0\n");
                if (canaryFails && subset == "v2")
                {
                    GateBackend.States[model].FailWith = "the new model version is broken";
                }
                var server = await RunningServer.StartAsync(repo, services => services.AddSingleton<IModelBackend, GateBackend>());
                _owned.Add(server);
                _pods[subset] = (server, model);
            }
            _api = await FakeKubernetesApi.StartAsync();
            _owned.Add(_api);
            _api.Put("networking.istio.io/v1", "virtualservices", CanaryControllerTests.Shipped);
            var sidecars = await StartSidecarMetricsAsync();
            _prometheus = await PrometheusProcess.StartAsync($$"""
                - job_name: kubernetes-pods
                  static_configs:
                    - targets: ["127.0.0.1:{{_pods["v1"].Server.Endpoints.MetricsPort}}"]
                      labels: {namespace: inference, pod: inference-server-v1-abc12-x1}
                    - targets: ["127.0.0.1:{{_pods["v2"].Server.Endpoints.MetricsPort}}"]
                      labels: {namespace: inference, pod: inference-server-v2-def34-y1}
                - job_name: istio-sidecars
                  static_configs:
                    - targets: ["{{sidecars}}"]
                """);
            _owned.Add(_prometheus);
            _traffic = Task.Run(() => DriveAsync(_stop.Token));
        }

        public JsonObject VirtualService() => _api.Get("networking.istio.io/v1", "inference", "virtualservices", "inference-server")!;

        public long Sent(string subset) => _istio.Where(kv => kv.Key.Subset == subset).Sum(kv => kv.Value);

        /// <summary>The canary weight of every apply patch meshctl sent, in order.</summary>
        public List<int> AppliedCanaryWeights() =>
            _api.Writes.Where(w => w.ContentType?.StartsWith("application/apply-patch+yaml", StringComparison.Ordinal) == true)
                .Select(w => Split.Read((JsonObject)JsonNode.Parse(w.Body)!).Canary).ToList();

        /// <summary>Runs <c>meshctl canary start</c> with short steps: a 3 s window (three 1 s scrapes), 3 s pauses, and
        /// a max wait that bounds the run should data never arrive.</summary>
        public async Task<(int Code, string Output, string Error)> RunMeshctlAsync()
        {
            var output = new StringWriter();
            var error = new StringWriter();
            var code = await MeshCommandLine.RunAsync(
            [
                "canary", "start", "--kubeconfig", CanaryCommandTests.Kubeconfig(_api), "--prometheus", _prometheus.Url.ToString(),
                "--steps", "20,50,100", "--pause", "3s", "--interval", "3s", "--max-wait", "30s", "--min-requests", "10",
                "--max-error-rate", "0.05", "--max-p95-latency", "2.5s",
            ], output, error);
            return (code, output.ToString(), error.ToString());
        }

        /// <summary>
        /// The mesh: each request goes to v1 or v2 by the VirtualService's current split weights, as Envoy would; and
        /// the destination sidecar's part, emulated: every response is counted in istio_requests_total by subset and
        /// code (<see cref="StartSidecarMetricsAsync"/> exposes them).
        /// </summary>
        private async Task DriveAsync(CancellationToken cancellationToken)
        {
            var random = new Random(8);
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
            try
            {
                while (await pace.WaitForNextTickAsync(cancellationToken))
                {
                    var canary = Split.Read(VirtualService()).Canary;
                    var subset = random.Next(100) < canary ? "v2" : "v1";
                    var (server, model) = _pods[subset];
                    using var response = await server.Http.PostAsync($"/v2/models/{model}/infer", new ByteArrayContent(Body), cancellationToken);
                    _istio.AddOrUpdate((subset, (int)response.StatusCode), 1, (_, n) => n + 1);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task<string> StartSidecarMetricsAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            app.MapGet("/metrics", () =>
            {
                var text = new StringBuilder("# TYPE istio_requests_total counter\n");
                foreach (var ((subset, code), count) in _istio)
                {
                    text.Append(CultureInfo.InvariantCulture,
                        $"istio_requests_total{{reporter=\"destination\",destination_service_namespace=\"inference\",destination_service_name=\"inference-server\",destination_version=\"{subset}\",destination_workload=\"inference-server-{subset}\",response_code=\"{code}\"}} {count}\n");
                }
                return Results.Text(text.ToString(), "text/plain; version=0.0.4");
            });
            await app.StartAsync();
            _owned.Add(app);
            return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Authority;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _traffic;
            for (var i = _owned.Count - 1; i >= 0; i--)
            {
                await _owned[i].DisposeAsync();
            }
            _stop.Dispose();
        }
    }
}
