using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.AspNetCore.Server;
using InferenceServer.Observability;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The x-request-id header and the JSON access log against the real server on the sample models: each request's line
/// (parsed as JSON) names its protocol, status, gRPC status, model and version, and counts the body bytes the client
/// sent and received; ids are echoed on REST and gRPC responses, generated when missing or unsafe; the log can be
/// switched off, never holds a request when its queue is full, and is flushed on shutdown.
/// </summary>
public sealed partial class AccessLogTests
{
    private const string UserAgent = "access-log-test/1.0";

    private static readonly WireTensor[] SimpleInputs =
    [
        new("INPUT0", "INT32", [1, 16], new byte[64]),
        new("INPUT1", "INT32", [1, 16], new byte[64]),
    ];

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex GeneratedId();

    private static Task<RunningServer> StartAsync(CapturedAccessLog log, params string[] args) =>
        RunningServer.StartAsync(Paths.SampleModels, services => services.AddSingleton<IAccessLogSink>(log), args);

    private static HttpRequestMessage Post(string path, byte[] body, string? requestId = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.UserAgent.ParseAdd(UserAgent);
        if (requestId is not null)
        {
            request.Headers.TryAddWithoutValidation(RequestId.Header, requestId);
        }
        return request;
    }

    private static string ResponseId(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues(RequestId.Header));

    /// <summary>The fields every line has, whatever the request.</summary>
    private static void AssertCommonFields(JsonElement line, string protocol, string method, string path, int status)
    {
        var timestamp = line.GetProperty("timestamp").GetString()!;
        Assert.EndsWith("Z", timestamp);
        var parsed = DateTime.Parse(timestamp, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        Assert.Equal(DateTimeKind.Utc, parsed.Kind);
        Assert.InRange(parsed, DateTime.UtcNow.AddMinutes(-5), DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(protocol, line.GetProperty("protocol").GetString());
        Assert.Equal(method, line.GetProperty("method").GetString());
        Assert.Equal(path, line.GetProperty("path").GetString());
        Assert.Equal(status, line.GetProperty("status").GetInt32());
        Assert.True(line.GetProperty("duration_ms").GetDouble() >= 0);
        Assert.Equal("127.0.0.1", line.GetProperty("client_address").GetString());
    }

    private static void AssertModel(JsonElement line, string model, string version)
    {
        Assert.Equal(model, line.GetProperty("model").GetString());
        Assert.Equal(version, line.GetProperty("version").GetString());
    }

    private static void AssertBytes(JsonElement line, long bytesIn, long bytesOut)
    {
        Assert.Equal(bytesIn, line.GetProperty("bytes_in").GetInt64());
        Assert.Equal(bytesOut, line.GetProperty("bytes_out").GetInt64());
    }

    [Fact]
    public async Task Rest_infer_is_logged_with_the_model_the_version_that_served_and_the_bytes_that_crossed()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        var (body, _) = InferClient.BuildRestBody(SimpleInputs, binary: false);

        // No version asked for: the line names the one that served.
        using var response = await server.Http.SendAsync(Post("/v2/models/simple/infer", body));
        var answer = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var line = await log.ForRequestAsync(ResponseId(response));
        AssertCommonFields(line, "HTTP/1.1", "POST", "/v2/models/simple/infer", 200);
        AssertModel(line, "simple", "1");
        AssertBytes(line, body.Length, answer.Length);
        Assert.Equal(UserAgent, line.GetProperty("user_agent").GetString());
        Assert.False(line.TryGetProperty("grpc_status", out _));

        // An explicit version, in the route.
        using var versioned = await server.Http.GetAsync("/v2/models/linear/versions/1");
        Assert.Equal(HttpStatusCode.OK, versioned.StatusCode);
        AssertModel(await log.ForRequestAsync(ResponseId(versioned)), "linear", "1");
    }

    [Fact]
    public async Task Rest_client_error_is_logged_with_its_status_and_the_error_body()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        var body = Encoding.UTF8.GetBytes("{\"inputs\": []}");

        using var response = await server.Http.SendAsync(Post("/v2/models/simple/infer", body));
        var answer = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);

        var line = await log.ForRequestAsync(ResponseId(response));
        AssertCommonFields(line, "HTTP/1.1", "POST", "/v2/models/simple/infer", 400);
        AssertModel(line, "simple", "");
        AssertBytes(line, body.Length, answer.Length);
    }

    [Fact]
    public async Task Grpc_ModelInfer_is_logged_with_grpc_status_0_the_model_and_version_and_echoes_the_request_id()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        var request = InferClient.BuildGrpcRequest("simple", "", SimpleInputs, raw: true);

        using var call = server.Grpc.ModelInferAsync(request, new Metadata { { RequestId.Header, "grpc-infer-1" } });
        var headers = await call.ResponseHeadersAsync;
        var response = await call.ResponseAsync;
        Assert.Equal("grpc-infer-1", headers.GetValue(RequestId.Header));

        var line = await log.ForRequestAsync("grpc-infer-1");
        AssertCommonFields(line, "HTTP/2", "POST", "/inference.GRPCInferenceService/ModelInfer", 200);
        Assert.Equal(0, line.GetProperty("grpc_status").GetInt32());
        AssertModel(line, "simple", "1");
        // A gRPC message crosses as a 5-byte prefix (compressed flag, length) and the message.
        AssertBytes(line, 5 + request.CalculateSize(), 5 + response.CalculateSize());
        Assert.StartsWith("grpc-dotnet/", line.GetProperty("user_agent").GetString());
    }

    [Fact]
    public async Task Grpc_error_is_logged_with_its_grpc_status_and_echoes_the_request_id()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        WireTensor[] wrong = [new("INPUT0", "FP32", [1, 16], new byte[64]), new("INPUT1", "INT32", [1, 16], new byte[64])];
        var request = InferClient.BuildGrpcRequest("simple", "1", wrong, raw: true);

        using var call = server.Grpc.ModelInferAsync(request, new Metadata { { RequestId.Header, "grpc-error-1" } });
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        // The call failed before any message: the one header block carries both the status and the id.
        Assert.Equal("grpc-error-1", e.Trailers.GetValue(RequestId.Header));

        var line = await log.ForRequestAsync("grpc-error-1");
        AssertCommonFields(line, "HTTP/2", "POST", "/inference.GRPCInferenceService/ModelInfer", 200);
        Assert.Equal((int)StatusCode.InvalidArgument, line.GetProperty("grpc_status").GetInt32());
        AssertModel(line, "simple", "1");
        AssertBytes(line, 5 + request.CalculateSize(), 0);
    }

    [Fact]
    public async Task Streaming_generations_are_one_line_each_with_the_model_version_and_every_byte_streamed()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);

        // Triton's generate_stream: server-sent events.
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { text_input = "ROMEO:", parameters = new { max_tokens = 24, temperature = 0 } }));
        using var sse = await server.Http.SendAsync(Post("/v2/models/bigram_lm/generate_stream", body), HttpCompletionOption.ResponseHeadersRead);
        var events = await sse.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, sse.StatusCode);
        Assert.True(Encoding.UTF8.GetString(events).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Length > 1, "the text should arrive in pieces");
        var line = await log.ForRequestAsync(ResponseId(sse));
        AssertCommonFields(line, "HTTP/1.1", "POST", "/v2/models/bigram_lm/generate_stream", 200);
        AssertModel(line, "bigram_lm", "1");
        AssertBytes(line, body.Length, events.Length);

        // gRPC ModelStreamInfer: the id is in the stream's response headers; one line for the whole call.
        var request = EndToEnd.TextRequest("bigram_lm", "JULIET:", 24, "stream-1");
        using var call = server.Grpc.ModelStreamInfer(new Metadata { { RequestId.Header, "grpc-stream-1" } });
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        var headers = await call.ResponseHeadersAsync;
        var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal("grpc-stream-1", headers.GetValue(RequestId.Header));
        Assert.True(responses.Count > 1, "the text should arrive in pieces");
        Assert.All(responses, r => Assert.Equal("", r.ErrorMessage));

        line = await log.ForRequestAsync("grpc-stream-1");
        AssertCommonFields(line, "HTTP/2", "POST", "/inference.GRPCInferenceService/ModelStreamInfer", 200);
        Assert.Equal(0, line.GetProperty("grpc_status").GetInt32());
        AssertModel(line, "bigram_lm", "1");
        AssertBytes(line, 5 + request.CalculateSize(), responses.Sum(r => 5L + r.CalculateSize()));
    }

    [Fact]
    public async Task OpenAi_request_is_logged_with_the_model_named_in_the_body()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        var body = Encoding.UTF8.GetBytes("""{"model": "bigram_lm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}""");

        using var response = await server.Http.SendAsync(Post("/v1/chat/completions", body));
        var answer = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var line = await log.ForRequestAsync(ResponseId(response));
        AssertCommonFields(line, "HTTP/1.1", "POST", "/v1/chat/completions", 200);
        AssertModel(line, "bigram_lm", "1");
        AssertBytes(line, body.Length, answer.Length);

        // An unknown model is still named.
        using var missing = await server.Http.SendAsync(Post("/v1/chat/completions", Encoding.UTF8.GetBytes(
            """{"model": "no_such_model", "messages": [{"role": "user", "content": "Hi"}]}""")));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        line = await log.ForRequestAsync(ResponseId(missing));
        Assert.Equal(404, line.GetProperty("status").GetInt32());
        AssertModel(line, "no_such_model", "");
    }

    [Fact]
    public async Task Incoming_request_id_is_echoed_on_rest_and_grpc_and_logged()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        // Envoy's form, and the longest accepted.
        foreach (var id in (string[])["0b6ad5b8-7a3c-9d4e-8f21-3c5d7e9a1b2f", new string('x', RequestId.MaxLength)])
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v2/health/ready");
            request.Headers.Add(RequestId.Header, id);
            using var response = await server.Http.SendAsync(request);
            Assert.Equal(id, ResponseId(response));
            var line = await log.ForRequestAsync(id);
            AssertCommonFields(line, "HTTP/1.1", "GET", "/v2/health/ready", 200);
            AssertModel(line, "", "");
        }

        using var call = server.Grpc.ServerLiveAsync(new ServerLiveRequest(), new Metadata { { RequestId.Header, "grpc-live-1" } });
        Assert.Equal("grpc-live-1", (await call.ResponseHeadersAsync).GetValue(RequestId.Header));
        Assert.True((await call.ResponseAsync).Live);
        var grpcLine = await log.ForRequestAsync("grpc-live-1");
        AssertCommonFields(grpcLine, "HTTP/2", "POST", "/inference.GRPCInferenceService/ServerLive", 200);
        AssertModel(grpcLine, "", "");
    }

    [Fact]
    public async Task Without_a_request_id_one_is_generated_echoed_and_logged()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        var ids = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            using var response = await server.Http.GetAsync("/v2/health/live");
            var id = ResponseId(response);
            Assert.Matches(GeneratedId(), id);
            AssertCommonFields(await log.ForRequestAsync(id), "HTTP/1.1", "GET", "/v2/health/live", 200);
            ids.Add(id);
        }
        Assert.NotEqual(ids[0], ids[1]);

        using var call = server.Grpc.ServerReadyAsync(new ServerReadyRequest());
        var grpcId = (await call.ResponseHeadersAsync).GetValue(RequestId.Header)!;
        Assert.Matches(GeneratedId(), grpcId);
        await call.ResponseAsync;
        AssertCommonFields(await log.ForRequestAsync(grpcId), "HTTP/2", "POST", "/inference.GRPCInferenceService/ServerReady", 200);
    }

    [Theory]
    [InlineData("has\"quote")]
    [InlineData("has'quote")]
    [InlineData("has space")]
    [InlineData("back\\slash")]
    [InlineData("{\"injected\": true}")]
    [InlineData("too-long")]
    public async Task An_unsafe_request_id_is_replaced_by_a_generated_one(string id)
    {
        if (id == "too-long")
        {
            id = new string('x', RequestId.MaxLength + 1);
        }
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v2/health/live");
        Assert.True(request.Headers.TryAddWithoutValidation(RequestId.Header, id));

        using var response = await server.Http.SendAsync(request);
        var echoed = ResponseId(response);
        Assert.NotEqual(id, echoed);
        Assert.Matches(GeneratedId(), echoed);
        var line = await log.ForRequestAsync(echoed);
        Assert.DoesNotContain(log.Lines, l => l.GetProperty("request_id").GetString() == id);
        AssertCommonFields(line, "HTTP/1.1", "GET", "/v2/health/live", 200);
    }

    [Fact]
    public async Task Port_routing_404s_and_the_admin_port_get_a_line_too()
    {
        var log = new CapturedAccessLog();
        await using var server = await StartAsync(log);
        using var admin = server.NewMetricsClient();

        using var wrongPort = await admin.GetAsync("/v2/models/simple");
        Assert.Equal(HttpStatusCode.NotFound, wrongPort.StatusCode);
        var line = await log.ForRequestAsync(ResponseId(wrongPort));
        AssertCommonFields(line, "HTTP/1.1", "GET", "/v2/models/simple", 404);
        AssertBytes(line, 0, (await wrongPort.Content.ReadAsByteArrayAsync()).Length);

        using var metrics = await admin.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        line = await log.ForRequestAsync(ResponseId(metrics));
        AssertCommonFields(line, "HTTP/1.1", "GET", "/metrics", 200);
        AssertModel(line, "", "");
        AssertBytes(line, 0, (await metrics.Content.ReadAsByteArrayAsync()).Length);

        // REST on the gRPC port (HTTP/2 cleartext): 404, and not a gRPC call.
        using var h2 = new HttpClient();
        using var onGrpcPort = await h2.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.Endpoints.GrpcPort}/v2/health/live")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        });
        Assert.Equal(HttpStatusCode.NotFound, onGrpcPort.StatusCode);
        line = await log.ForRequestAsync(ResponseId(onGrpcPort));
        AssertCommonFields(line, "HTTP/2", "GET", "/v2/health/live", 404);
        Assert.False(line.TryGetProperty("grpc_status", out _));
    }

    [Fact]
    public async Task Server_logs_about_a_request_carry_its_id_in_their_scope()
    {
        var log = new CapturedAccessLog();
        var logs = new ScopeCapturingLoggerProvider();
        await using var server = await RunningServer.StartAsync(Paths.SampleModels, services =>
        {
            services.AddSingleton<IAccessLogSink>(log);
            services.AddSingleton<ILoggerProvider>(logs);
            // Innermost, so that the server's error interceptor sees (and logs) the unexpected failure.
            services.AddSingleton<FailingInterceptor>();
            services.PostConfigure<GrpcServiceOptions>(o => o.Interceptors.Add<FailingInterceptor>());
        });

        using var call = server.Grpc.ServerLiveAsync(new ServerLiveRequest(), new Metadata { { RequestId.Header, "scoped-1" } });
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.DoesNotContain(FailingInterceptor.Message, e.Status.Detail);

        var line = await log.ForRequestAsync("scoped-1");
        Assert.Equal((int)StatusCode.Internal, line.GetProperty("grpc_status").GetInt32());
        var logged = Assert.Single(logs.Entries, l => l.Exception?.Message == FailingInterceptor.Message);
        Assert.Contains(new KeyValuePair<string, object?>("XRequestId", "scoped-1"), logged.Scope);
    }

    [Fact]
    public async Task Access_log_false_writes_no_lines_but_request_ids_are_still_echoed()
    {
        var log = new CapturedAccessLog();
        var server = await StartAsync(log, "--access-log", "false");
        try
        {
            Assert.Null(server.Services.GetService<AccessLogWriter>());
            var (body, _) = InferClient.BuildRestBody(SimpleInputs, binary: false);
            using var infer = await server.Http.SendAsync(Post("/v2/models/simple/infer", body, "off-1"));
            Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
            Assert.Equal("off-1", ResponseId(infer));
            using var call = server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("simple", "", SimpleInputs, raw: true), new Metadata { { RequestId.Header, "off-2" } });
            Assert.Equal("off-2", (await call.ResponseHeadersAsync).GetValue(RequestId.Header));
            await call.ResponseAsync;
        }
        finally
        {
            // Stopping writes whatever is queued: nothing may be.
            await server.DisposeAsync();
        }
        Assert.Empty(log.Lines);
    }

    [Fact]
    public async Task A_full_queue_drops_and_counts_lines_without_holding_requests_and_stopping_writes_what_is_queued()
    {
        var log = new CapturedAccessLog();
        var writing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var release = new ManualResetEventSlim();
        var first = 0;
        // The sink (stdout) stalls on the first line.
        log.BeforeWrite = () =>
        {
            if (Interlocked.Exchange(ref first, 1) == 0)
            {
                writing.SetResult();
                release.Wait(TimeSpan.FromMinutes(1));
            }
        };
        var server = await RunningServer.StartAsync(Paths.SampleModels, services =>
        {
            services.AddSingleton<IAccessLogSink>(log);
            services.AddSingleton(new AccessLogOptions { QueueCapacity = 2 });
        });
        try
        {
            using (var response = await server.Http.GetAsync("/v2/health/live"))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            await writing.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // The writer is stuck: two lines fit in the queue, the other eight are dropped; every request is answered.
            for (var i = 0; i < 10; i++)
            {
                using var response = await server.Http.GetAsync("/v2/health/live");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            var metrics = server.Services.GetRequiredService<InferenceServer.Observability.ServerMetrics>();
            await EndToEnd.WaitUntil(() => metrics.AccessLogDropped.Value >= 8);
            using var admin = server.NewMetricsClient();
            var text = await admin.GetStringAsync("/metrics");
            Assert.Contains("\ninference_access_log_dropped_total 8\n", text);
        }
        finally
        {
            // Stopping waits for the writer to finish what is queued.
            var stopping = server.DisposeAsync().AsTask();
            release.Set();
            await stopping;
        }
        var lines = log.Lines;
        Assert.Equal(3, lines.Count);
        Assert.All(lines, l => Assert.Equal("/v2/health/live", l.GetProperty("path").GetString()));
    }

    /// <summary>Throws an unexpected exception from inside the server's error handling.</summary>
    private sealed class FailingInterceptor : Interceptor
    {
        public const string Message = "interceptor failure for the scope test";

        public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
            TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
            throw new InvalidOperationException(Message);
    }

    /// <summary>Keeps every log entry with the properties of the scopes it was written in.</summary>
    private sealed class ScopeCapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
    {
        private readonly Lock _gate = new();
        private readonly List<(string Message, Exception? Exception, List<KeyValuePair<string, object?>> Scope)> _entries = [];
        private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

        public IReadOnlyList<(string Message, Exception? Exception, List<KeyValuePair<string, object?>> Scope)> Entries
        {
            get
            {
                using var _ = _gate.EnterScope();
                return [.. _entries];
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Logger(ScopeCapturingLoggerProvider provider) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => provider._scopes.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var scope = new List<KeyValuePair<string, object?>>();
                provider._scopes.ForEachScope((s, list) =>
                {
                    if (s is IEnumerable<KeyValuePair<string, object?>> properties)
                    {
                        list.AddRange(properties);
                    }
                }, scope);
                using var _ = provider._gate.EnterScope();
                provider._entries.Add((formatter(state, exception), exception, scope));
            }
        }
    }
}
