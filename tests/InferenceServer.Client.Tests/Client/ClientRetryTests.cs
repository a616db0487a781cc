using System.Net;
using Grpc.Core;
using InferenceServer.Client;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Client;

/// <summary>
/// Retries against the real server's admission control (429 / RESOURCE_EXHAUSTED with Retry-After / pushback) and a
/// model that is not ready (503 / UNAVAILABLE), and against stubbed answers for the cases a server will not produce on
/// demand. A <see cref="RecordingTimeProvider"/> records the waits the client asks for without waiting.
/// </summary>
public sealed class ClientRetryTests
{
    // One token per hour: the bucket stays empty for the length of a test; Retry-After is about an hour.
    private const string Hourly = "0.000277";

    public static TheoryData<ClientProtocol> Protocols() => new(ClientProtocol.Grpc, ClientProtocol.RestJson);

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Rate_limited_calls_are_retried_twice_after_the_servers_wait_and_then_fail_with_RateLimited(ClientProtocol protocol)
    {
        // Burst 1, a token every 8 s: after one request the bucket is empty and the server asks for up to 8 s (under
        // the client's 10 s cap). The recording clock does not wait, and 8 s is longer than the test takes even on a
        // loaded machine, so the bucket cannot refill between the attempts (with 2 s it sometimes did).
        await using var server = await StartAdmissionServerAsync("0.125");
        var clock = new RecordingTimeProvider();
        using var client = new TestClient(server, protocol, new InferenceClientOptions { TimeProvider = clock });
        await client.Client.InferAsync(SimpleRequest());

        var e = await Assert.ThrowsAsync<RateLimitedException>(() => client.Client.InferAsync(SimpleRequest()));

        Assert.Contains("rate limit", e.Message);
        Assert.Equal(4, client.Counter.Count(protocol == ClientProtocol.Grpc ? "/ModelInfer" : "/infer"));
        Assert.Equal(2, clock.Waits.Count);
        Assert.All(clock.Waits, w => Assert.InRange(w, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(8)));
        if (protocol == ClientProtocol.Grpc)
        {
            Assert.Equal(StatusCode.ResourceExhausted, e.GrpcStatus);
            Assert.Equal(e.RetryAfter, clock.Waits[^1]);
        }
        else
        {
            // REST: Retry-After is whole seconds, and the client waits exactly what the server asked.
            Assert.Equal(HttpStatusCode.TooManyRequests, e.HttpStatus);
            Assert.All(clock.Waits, w => Assert.Equal(0, w.Ticks % TimeSpan.TicksPerSecond));
            Assert.Equal(e.RetryAfter, clock.Waits[^1]);
        }
        var rejections = await RejectionsAsync(server);
        Assert.Equal(3, rejections);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_server_wait_longer_than_the_cap_gives_up_at_once(ClientProtocol protocol)
    {
        await using var server = await StartAdmissionServerAsync(Hourly);
        var clock = new RecordingTimeProvider();
        using var client = new TestClient(server, protocol, new InferenceClientOptions { TimeProvider = clock });
        await client.Client.InferAsync(SimpleRequest());

        var e = await Assert.ThrowsAsync<RateLimitedException>(() => client.Client.InferAsync(SimpleRequest()));

        Assert.True(e.RetryAfter > RetryPolicy.Default.MaxRetryAfter, $"Retry-After {e.RetryAfter}");
        Assert.Empty(clock.Waits);
        Assert.Equal(2, client.Counter.Count(protocol == ClientProtocol.Grpc ? "/ModelInfer" : "/infer"));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_wait_past_the_calls_deadline_is_not_taken(ClientProtocol protocol)
    {
        await using var server = await StartAdmissionServerAsync(Hourly);
        var clock = new RecordingTimeProvider();
        var options = new InferenceClientOptions
        {
            TimeProvider = clock,
            Retry = RetryPolicy.Default with { MaxRetryAfter = TimeSpan.FromHours(2) },
            DefaultTimeout = TimeSpan.FromMinutes(30),
        };
        using var client = new TestClient(server, protocol, options);
        await client.Client.InferAsync(SimpleRequest());

        await Assert.ThrowsAsync<RateLimitedException>(() => client.Client.InferAsync(SimpleRequest()));

        Assert.Empty(clock.Waits);
        Assert.Equal(2, client.Counter.Count(protocol == ClientProtocol.Grpc ? "/ModelInfer" : "/infer"));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_model_that_is_not_ready_is_retried_with_backoff_then_fails_with_Unavailable(ClientProtocol protocol)
    {
        var repository = Paths.NewTempDirectory("client-broken-repo");
        Directory.CreateDirectory(Path.Combine(repository, "corrupt", "1"));
        await File.WriteAllBytesAsync(Path.Combine(repository, "corrupt", "1", "model.onnx"), [1, 2, 3, 4, 5]);
        await using var server = await RunningServer.StartAsync(repository);
        var clock = new RecordingTimeProvider();
        using var client = new TestClient(server, protocol, new InferenceClientOptions { TimeProvider = clock });

        var e = await Assert.ThrowsAsync<UnavailableException>(() => client.Client.InferAsync(new InferRequest("corrupt", Tensor.Create("x", new[] { 1f }))));

        Assert.Contains("not ready", e.Message);
        Assert.Equal(3, client.Counter.Count(protocol == ClientProtocol.Grpc ? "/ModelInfer" : "/infer"));
        // Backoff 100 ms then 200 ms, each within ±50% jitter.
        Assert.Equal(2, clock.Waits.Count);
        Assert.InRange(clock.Waits[0], TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(150));
        Assert.InRange(clock.Waits[1], TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(300));
        Assert.False(await client.Client.ModelReadyAsync("corrupt"));
    }

    [Fact]
    public async Task A_429_with_Retry_After_is_waited_out_and_the_retry_succeeds()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        var clock = new RecordingTimeProvider();
        var stub = new FailingFirstHandler(1, HttpStatusCode.TooManyRequests, TimeSpan.FromSeconds(3));
        using var client = new TestClient(server, ClientProtocol.RestJson, new InferenceClientOptions { TimeProvider = clock }, stub);

        var result = await client.Client.InferAsync(SimpleRequest());

        Assert.Equal(Enumerable.Repeat(2, 16), result.Output("OUTPUT0").ToArray<int>());
        Assert.Equal([TimeSpan.FromSeconds(3)], clock.Waits);
        Assert.Equal(2, client.Counter.Count("/infer"));
    }

    [Theory]
    [InlineData(HttpStatusCode.InternalServerError, typeof(ServerErrorException))]
    [InlineData(HttpStatusCode.GatewayTimeout, typeof(DeadlineExceededException))]
    [InlineData(HttpStatusCode.BadRequest, typeof(InvalidInputException))]
    public async Task Failures_that_a_retry_cannot_fix_are_not_retried(HttpStatusCode status, Type expected)
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        var clock = new RecordingTimeProvider();
        using var client = new TestClient(server, ClientProtocol.RestJson, new InferenceClientOptions { TimeProvider = clock },
            new FailingFirstHandler(1, status, TimeSpan.FromSeconds(1)));

        var e = await Assert.ThrowsAnyAsync<InferenceServerException>(() => client.Client.InferAsync(SimpleRequest()));

        Assert.IsType(expected, e);
        Assert.Equal($"stubbed {(int)status}", e.Message);
        Assert.Equal(status, e.HttpStatus);
        Assert.Empty(clock.Waits);
        Assert.Equal(1, client.Counter.Count("/infer"));
    }

    [Fact]
    public async Task A_grpc_message_over_the_size_limit_is_InvalidInput_and_not_retried_although_it_is_RESOURCE_EXHAUSTED()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels);
        var clock = new RecordingTimeProvider();
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{server.Endpoints.GrpcPort}",
            new global::Grpc.Net.Client.GrpcChannelOptions { MaxSendMessageSize = 100 });
        using var client = new InferenceGrpcClient(channel, new InferenceClientOptions { TimeProvider = clock });

        var e = await Assert.ThrowsAsync<InvalidInputException>(() => client.InferAsync(SimpleRequest()));

        Assert.Equal(StatusCode.ResourceExhausted, e.GrpcStatus);
        Assert.Contains("exceeds the maximum", e.Message);
        Assert.Empty(clock.Waits);
    }

    [Fact]
    public async Task A_refused_connection_is_retried_and_then_is_Unavailable()
    {
        // A port nothing listens on: bind one, note it, close it.
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var clock = new RecordingTimeProvider();
        using var client = new InferenceHttpClient(new Uri($"http://127.0.0.1:{port}"), new InferenceClientOptions { TimeProvider = clock });

        var e = await Assert.ThrowsAsync<UnavailableException>(() => client.ServerLiveAsync());

        Assert.Contains("could not reach the server", e.Message);
        Assert.Equal(2, clock.Waits.Count);
    }

    private static InferRequest SimpleRequest() =>
        new("simple", Tensor.Create("INPUT0", Enumerable.Repeat(1, 16).ToArray(), 1, 16), Tensor.Create("INPUT1", Enumerable.Repeat(1, 16).ToArray(), 1, 16));

    private static Task<RunningServer> StartAdmissionServerAsync(string requestsPerSecond) =>
        RunningServer.StartAsync(Paths.SampleModels, new Dictionary<string, string?>
        {
            ["Admission:Models:simple:RequestsPerSecond"] = requestsPerSecond,
            ["Admission:Models:simple:Burst"] = "1",
        });

    /// <summary>inference_rejections_total for simple, from the server's metrics endpoint.</summary>
    private static async Task<double> RejectionsAsync(RunningServer server)
    {
        using var metrics = server.NewMetricsClient();
        var text = await metrics.GetStringAsync("/metrics");
        return text.Split('\n')
            .Where(l => l.StartsWith("inference_rejections_total{", StringComparison.Ordinal) && l.Contains("model=\"simple\""))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }
}
