using System.Text.Json.Nodes;
using InferenceServer.Mesh.Canary;
using InferenceServer.Mesh.Kubernetes;
using InferenceServer.MeshCtl;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Mesh;

/// <summary><c>meshctl canary</c> in-process, with a kubeconfig pointing at the fake Kubernetes API.</summary>
public sealed class CanaryCommandTests
{
    private static readonly VirtualServiceSplit Split = new(CanaryControllerTests.Host, "v1", "v2");

    /// <summary>A kubeconfig file whose only context is the fake API server.</summary>
    internal static string Kubeconfig(FakeKubernetesApi api)
    {
        var file = Path.Combine(Paths.NewTempDirectory("kubeconfig"), "config");
        File.WriteAllText(file, $"""
            apiVersion: v1
            kind: Config
            clusters:
              - name: fake
                cluster:
                  server: {api.Url}
            users:
              - name: tester
                user:
                  token: fake-token
            contexts:
              - name: fake
                context:
                  cluster: fake
                  user: tester
                  namespace: inference
            current-context: fake
            """);
        return file;
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await MeshCommandLine.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static async Task<FakeKubernetesApi> SeededApiAsync()
    {
        var api = await FakeKubernetesApi.StartAsync();
        api.Put("networking.istio.io/v1", "virtualservices", CanaryControllerTests.Shipped);
        return api;
    }

    private static JsonObject Stored(FakeKubernetesApi api) => api.Get("networking.istio.io/v1", "inference", "virtualservices", "inference-server")!;

    [Fact]
    public async Task Status_shows_the_weights_and_that_no_rollout_is_recorded()
    {
        await using var api = await SeededApiAsync();
        var (code, output, error) = await RunAsync("canary", "status", "--kubeconfig", Kubeconfig(api));
        Assert.True(code == 0, error);
        Assert.Contains("VirtualService inference/inference-server: v1 90% / v2 10%", output);
        Assert.Contains("no rollout recorded", output);
    }

    [Fact]
    public async Task Promote_then_abort_through_meshctl_and_status_reports_them()
    {
        await using var api = await SeededApiAsync();
        var kubeconfig = Kubeconfig(api);
        var promote = await RunAsync("canary", "promote", "--kubeconfig", kubeconfig);
        Assert.True(promote.Code == 0, promote.Error);
        Assert.Contains("promoted: v1 0% / v2 100%", promote.Output);
        Assert.Equal((0, 100), Split.Read(Stored(api)));

        var abort = await RunAsync("canary", "abort", "--kubeconfig", kubeconfig);
        Assert.True(abort.Code == 0, abort.Error);
        Assert.Contains("aborted: v1 100% / v2 0%", abort.Output);
        Assert.Equal((100, 0), Split.Read(Stored(api)));

        var text = await RunAsync("canary", "status", "--kubeconfig", kubeconfig);
        Assert.Contains("rollout of v2 (stable v1): Aborted", text.Output);
        Assert.Contains("aborted by hand", text.Output);
        var json = await RunAsync("canary", "status", "--kubeconfig", kubeconfig, "-o", "json");
        var status = JsonNode.Parse(json.Output)!;
        Assert.Equal(CanaryPhase.Aborted, (string?)status["rollout"]!["phase"]);
        Assert.Equal(100, (int)status["weights"]!["v1"]!);
        Assert.All(api.Writes, w => Assert.Contains("fieldManager=meshctl", w.Query));
    }

    [Fact]
    public async Task Dry_run_start_prints_the_patches_and_sends_nothing()
    {
        await using var api = await SeededApiAsync();
        var (code, output, error) = await RunAsync("canary", "start", "--kubeconfig", Kubeconfig(api), "--dry-run", "--steps", "20,60,100", "--pause", "2m");
        Assert.True(code == 0, error);
        Assert.Empty(api.Writes);
        Assert.Contains("--- step 1 of 3: v1 80% / v2 20%", output);
        Assert.Contains("--- step 3 of 3: v1 0% / v2 100%", output);
        Assert.Contains(CanaryState.AnnotationKey, output);
    }

    [Theory]
    [InlineData("--steps 10,5,100", "--steps must increase: 5 comes after 10")]
    [InlineData("--steps 10,150", "weight 150 is outside 1..100")]
    [InlineData("--steps 10,x", "'x' is not a whole percentage")]
    [InlineData("--pause 5x", "--pause: '5x' is not a duration")]
    [InlineData("--max-error-rate 5", "--max-error-rate 5 is not a fraction")]
    [InlineData("--sources server,linkerd", "unknown source 'linkerd'")]
    [InlineData("--min-requests many", "--min-requests: 'many' is not a whole number")]
    [InlineData("--stable v2", "--stable and --canary are both 'v2'")]
    [InlineData("--prometheus ftp://x", "--prometheus 'ftp://x' is not an http(s) URL")]
    [InlineData("--query nope=up", "unknown query 'nope'")]
    [InlineData("", "--prometheus is required")]
    public async Task Bad_start_input_exits_2_with_a_message_and_writes_nothing(string options, string message)
    {
        await using var api = await SeededApiAsync();
        var extra = options.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var prometheus = options.Contains("--prometheus", StringComparison.Ordinal) || options.Length == 0 ? [] : new[] { "--prometheus", "http://127.0.0.1:1" };
        var (code, _, error) = await RunAsync(["canary", "start", "--kubeconfig", Kubeconfig(api), .. prometheus, .. extra]);
        Assert.Equal(2, code);
        Assert.Contains(message, error);
        Assert.DoesNotContain("   at ", error);
        Assert.Empty(api.Writes);
    }

    [Fact]
    public async Task Other_bad_input_exits_2_with_a_message()
    {
        await using var api = await SeededApiAsync();
        var kubeconfig = Kubeconfig(api);
        var format = await RunAsync("canary", "status", "--kubeconfig", kubeconfig, "-o", "xml");
        Assert.Equal((2, true), (format.Code, format.Error.Contains("--output 'xml' is not text or json", StringComparison.Ordinal)));
        var missing = await RunAsync("canary", "status", "--kubeconfig", kubeconfig, "--virtual-service", "nope");
        Assert.Equal(1, missing.Code);
        Assert.Contains("VirtualService inference/nope not found", missing.Error);
        var host = await RunAsync("canary", "promote", "--kubeconfig", kubeconfig, "--host", "other.inference.svc.cluster.local");
        Assert.Equal(2, host.Code);
        Assert.Contains("no HTTP route splits other.inference.svc.cluster.local between subsets v1 and v2", host.Error);
        var unknown = await RunAsync("canary", "start", "--kubeconfig", kubeconfig, "--bogus");
        Assert.Equal(2, unknown.Code);
        Assert.Contains("Unrecognized command or argument '--bogus'", unknown.Error);
        var noCommand = await RunAsync("canary", "launch");
        Assert.Equal(2, noCommand.Code);
        var file = await RunAsync("canary", "status", "--kubeconfig", "/nonexistent/kubeconfig");
        Assert.Equal(2, file.Code);
        Assert.Contains("--kubeconfig /nonexistent/kubeconfig: no such file", file.Error);
        Assert.Empty(api.Writes);
    }
}
