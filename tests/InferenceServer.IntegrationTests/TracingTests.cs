using System.Collections;
using System.Diagnostics;
using System.Net;
using System.Text;
using Grpc.Core;
using InferenceServer.Hosting;
using InferenceServer.Observability;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// OpenTelemetry tracing end to end: a real server with tracing turned on by its OTEL_* configuration, requests that
/// carry a caller's W3C or B3 context, and the spans an in-memory exporter (and an OTLP receiver) gets. Activity
/// listeners are process-wide and other tests' servers run alongside, so every assertion looks only at the spans of
/// the trace ids this test sent.
/// </summary>
public sealed class TracingTests
{
    private const string Simple = "simple";

    [Fact]
    public async Task A_REST_inference_span_is_a_child_of_the_server_span_whose_parent_is_the_traceparent()
    {
        await using var traced = await TracedServer.StartAsync();
        var (traceId, callerSpanId, traceparent) = NewCaller();

        using var response = await PostInferAsync(traced.Server, rows: 2, [("traceparent", traceparent)]);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, infer.ParentSpanId);
        Assert.Equal("infer simple", infer.DisplayName);
        Assert.Equal(Simple, infer.GetTagItem(Telemetry.ModelName));
        Assert.Equal("1", infer.GetTagItem(Telemetry.ModelVersion));
        // The request's two rows ran as one execution of batch size 2.
        Assert.Equal(2L, infer.GetTagItem(Telemetry.BatchSize));
        Assert.True(infer.GetTagItem(Telemetry.QueueDuration) is double queued && queued >= 0);
        Assert.Equal(Telemetry.Success, infer.GetTagItem(Telemetry.Outcome));
        Assert.Equal(ActivityStatusCode.Unset, infer.Status);
    }

    [Fact]
    public async Task A_gRPC_ModelInfer_span_joins_the_trace_of_its_traceparent_metadata()
    {
        await using var traced = await TracedServer.StartAsync();
        var (traceId, callerSpanId, traceparent) = NewCaller();

        await traced.Server.Grpc.ModelInferAsync(SimpleGrpcRequest(rows: 3), new Metadata { { "traceparent", traceparent } });

        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(ActivityKind.Server, server.Kind);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, infer.ParentSpanId);
        Assert.Equal(Simple, infer.GetTagItem(Telemetry.ModelName));
        Assert.Equal("1", infer.GetTagItem(Telemetry.ModelVersion));
        Assert.Equal(3L, infer.GetTagItem(Telemetry.BatchSize));
        Assert.IsType<double>(infer.GetTagItem(Telemetry.QueueDuration));
        Assert.Equal(Telemetry.Success, infer.GetTagItem(Telemetry.Outcome));
    }

    [Fact]
    public async Task Envoy_B3_headers_with_a_64_bit_trace_id_are_the_parent_of_a_REST_request()
    {
        await using var traced = await TracedServer.StartAsync();
        var shortTraceId = ActivityTraceId.CreateRandom().ToHexString()[16..];
        var callerSpanId = ActivitySpanId.CreateRandom();
        // Zipkin's 64-bit trace ids are the low half of a 128-bit one.
        var traceId = ActivityTraceId.CreateFromString("0000000000000000" + shortTraceId);

        using var response = await PostInferAsync(traced.Server, rows: 1,
        [
            ("x-b3-traceid", shortTraceId), ("x-b3-spanid", callerSpanId.ToHexString()),
            ("x-b3-parentspanid", ActivitySpanId.CreateRandom().ToHexString()), ("x-b3-sampled", "1"),
        ]);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, infer.ParentSpanId);
        Assert.Equal(1L, infer.GetTagItem(Telemetry.BatchSize));
        Assert.Equal(Telemetry.Success, infer.GetTagItem(Telemetry.Outcome));
    }

    [Fact]
    public async Task The_single_b3_header_is_the_parent_of_a_gRPC_call()
    {
        await using var traced = await TracedServer.StartAsync();
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpanId = ActivitySpanId.CreateRandom();

        await traced.Server.Grpc.ModelInferAsync(SimpleGrpcRequest(rows: 1), new Metadata { { "b3", $"{traceId.ToHexString()}-{callerSpanId.ToHexString()}-1" } });

        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, infer.ParentSpanId);
        Assert.Equal(Telemetry.Success, infer.GetTagItem(Telemetry.Outcome));
    }

    [Fact]
    public async Task A_request_with_bad_input_has_an_error_span_with_its_outcome()
    {
        await using var traced = await TracedServer.StartAsync();
        var (traceId, callerSpanId, traceparent) = NewCaller();

        // 15 elements where the model takes 16.
        using var response = await PostInferAsync(traced.Server, rows: 1, [("traceparent", traceparent)], elements: 15);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, infer.ParentSpanId);
        Assert.Equal("invalid_argument", infer.GetTagItem(Telemetry.Outcome));
        Assert.Equal("invalid_argument", infer.GetTagItem(Telemetry.ErrorType));
        Assert.Equal(ActivityStatusCode.Error, infer.Status);
        Assert.Contains("INPUT0", infer.StatusDescription);
        // It never reached an execution.
        Assert.Null(infer.GetTagItem(Telemetry.BatchSize));
    }

    [Fact]
    public async Task A_generation_span_carries_the_model_version_and_outcome()
    {
        await using var traced = await TracedServer.StartAsync();
        var (traceId, callerSpanId, traceparent) = NewCaller();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/bigram_lm/generate")
        {
            Content = new StringContent("""{"text_input": "KING", "parameters": {"max_tokens": 4}}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", traceparent);
        using var response = await traced.Server.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (generation, server) = await traced.Spans.InferenceAsync(traceId, "bigram_lm", "generate bigram_lm");
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(server.SpanId, generation.ParentSpanId);
        Assert.Equal("bigram_lm", generation.GetTagItem(Telemetry.ModelName));
        Assert.Equal("1", generation.GetTagItem(Telemetry.ModelVersion));
        Assert.Equal(Telemetry.Success, generation.GetTagItem(Telemetry.Outcome));
        Assert.Equal(4, generation.GetTagItem(Telemetry.UsageOutputTokens));
    }

    [Fact]
    public async Task Callers_that_did_not_sample_their_trace_and_health_probes_are_not_recorded()
    {
        var traced = await TracedServer.StartAsync();
        var unsampledW3c = ActivityTraceId.CreateRandom();
        var unsampledB3 = ActivityTraceId.CreateRandom();
        var (probe, _, probeTraceparent) = NewCaller();
        var (sampled, _, traceparent) = NewCaller();
        try
        {
            using (await PostInferAsync(traced.Server, rows: 1, [("traceparent", $"00-{unsampledW3c.ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-00")]))
            using (await PostInferAsync(traced.Server, rows: 1,
                [("x-b3-traceid", unsampledB3.ToHexString()), ("x-b3-spanid", ActivitySpanId.CreateRandom().ToHexString()), ("x-b3-sampled", "0")]))
            using (var ready = new HttpRequestMessage(HttpMethod.Get, "/v2/health/ready"))
            {
                ready.Headers.Add("traceparent", probeTraceparent);
                using var response = await traced.Server.Http.SendAsync(ready);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            // The control: a sampled caller, after the others on the same server, is recorded.
            using (await PostInferAsync(traced.Server, rows: 1, [("traceparent", traceparent)]))
            {
                await traced.Spans.InferenceAsync(sampled, Simple);
            }
        }
        finally
        {
            // Stopping the server ends every request's spans: what was not exported by then never will be.
            await traced.DisposeAsync();
        }
        Assert.Empty(traced.Spans.Of(unsampledW3c));
        Assert.Empty(traced.Spans.Of(unsampledB3));
        Assert.Empty(traced.Spans.Of(probe));
    }

    [Fact]
    public async Task OTEL_TRACES_SAMPLER_replaces_the_default_sampler()
    {
        await using var traced = await TracedServer.StartAsync(new() { ["OTEL_TRACES_SAMPLER"] = "always_on" });
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpanId = ActivitySpanId.CreateRandom();

        // Not sampled by the caller; always_on records it all the same.
        using var response = await PostInferAsync(traced.Server, rows: 1, [("traceparent", $"00-{traceId.ToHexString()}-{callerSpanId.ToHexString()}-00")]);

        var (infer, server) = await traced.Spans.InferenceAsync(traceId, Simple);
        Assert.Equal(callerSpanId, server.ParentSpanId);
        Assert.Equal(Telemetry.Success, infer.GetTagItem(Telemetry.Outcome));
    }

    [Fact]
    public async Task Spans_reach_an_OTLP_receiver_with_the_service_resource()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var server = await RunningServer.StartAsync(Paths.SampleModels, new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_RESOURCE_ATTRIBUTES"] = "service.namespace=mesh,deployment.environment.name=test",
        });
        var (traceId, callerSpanId, traceparent) = NewCaller();
        try
        {
            using var response = await PostInferAsync(server, rows: 2, [("traceparent", traceparent)]);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            // Shutting down flushes the batch exporter.
            await server.DisposeAsync();
        }

        var spans = receiver.Spans.Where(s => s.TraceId == traceId.ToHexString()).ToList();
        var infer = Assert.Single(spans, s => s.Name == "infer simple");
        var serverSpan = Assert.Single(spans, s => s.SpanId == infer.ParentSpanId);
        Assert.Equal(2, serverSpan.Kind); // SPAN_KIND_SERVER
        Assert.Equal(callerSpanId.ToHexString(), serverSpan.ParentSpanId);
        Assert.Equal(Simple, infer.Attributes[Telemetry.ModelName]);
        Assert.Equal("1", infer.Attributes[Telemetry.ModelVersion]);
        Assert.Equal(2L, infer.Attributes[Telemetry.BatchSize]);
        Assert.IsType<double>(infer.Attributes[Telemetry.QueueDuration]);
        Assert.Equal(Telemetry.Success, infer.Attributes[Telemetry.Outcome]);
        Assert.Equal(Tracing.DefaultServiceName, infer.Resource["service.name"]);
        Assert.Equal("mesh", infer.Resource["service.namespace"]);
        Assert.Equal("test", infer.Resource["deployment.environment.name"]);
    }

    [Fact]
    public async Task The_traces_endpoint_and_service_name_come_from_their_OTEL_variables()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var server = await RunningServer.StartAsync(Paths.SampleModels, new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = receiver.Endpoint.TrimEnd('/') + "/v1/traces",
            ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf",
            ["OTEL_SERVICE_NAME"] = "inference-canary",
        });
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpanId = ActivitySpanId.CreateRandom();
        try
        {
            await server.Grpc.ModelInferAsync(SimpleGrpcRequest(rows: 1), new Metadata { { "b3", $"{traceId.ToHexString()}-{callerSpanId.ToHexString()}-1" } });
        }
        finally
        {
            await server.DisposeAsync();
        }

        var spans = receiver.Spans.Where(s => s.TraceId == traceId.ToHexString()).ToList();
        var infer = Assert.Single(spans, s => s.Name == "infer simple");
        Assert.Equal(callerSpanId.ToHexString(), Assert.Single(spans, s => s.SpanId == infer.ParentSpanId).ParentSpanId);
        Assert.Equal("inference-canary", infer.Resource["service.name"]);
    }

    [Fact]
    public async Task Without_OTEL_configuration_no_tracer_provider_is_registered()
    {
        var empty = Paths.NewTempDirectory("untraced-repo");
        async Task<bool> TracedAsync(Dictionary<string, string?> configuration)
        {
            await using var server = await RunningServer.StartAsync(empty, configuration);
            var provider = server.Services.GetService<TracerProvider>();
            Assert.Equal(provider is not null, server.Services.GetRequiredService<DistributedContextPropagator>() is HostingPropagator);
            return provider is not null;
        }

        Assert.False(await TracedAsync([]));
        Assert.False(await TracedAsync(new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317", ["OTEL_SDK_DISABLED"] = "true" }));
        Assert.False(await TracedAsync(new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317", ["OTEL_TRACES_EXPORTER"] = "none" }));
        // The same server with an endpoint: traced.
        Assert.True(await TracedAsync(new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317" }));
    }

    [Fact]
    public void An_exporter_the_server_does_not_have_stops_it_at_start_up()
    {
        var error = Assert.Throws<ArgumentException>(() => InferenceServerApp.Create(
            ["--model-repository", Paths.NewTempDirectory("zipkin-repo")], configuration: new Dictionary<string, string?> { ["OTEL_TRACES_EXPORTER"] = "zipkin" }));
        Assert.Contains("zipkin", error.Message);
    }

    /// <summary>A caller's context: a new trace and span, and the sampled traceparent that carries them.</summary>
    private static (ActivityTraceId TraceId, ActivitySpanId SpanId, string Traceparent) NewCaller()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var spanId = ActivitySpanId.CreateRandom();
        return (traceId, spanId, $"00-{traceId.ToHexString()}-{spanId.ToHexString()}-01");
    }

    /// <summary>A REST infer of <c>simple</c> with <paramref name="rows"/> rows of <paramref name="elements"/> (the model takes 16), with the caller's headers.</summary>
    private static Task<HttpResponseMessage> PostInferAsync(RunningServer server, int rows, IEnumerable<(string Name, string Value)> headers, int elements = 16)
    {
        var data = string.Join(",", Enumerable.Range(0, rows * elements));
        var body = $$"""
            {"inputs": [
              {"name": "INPUT0", "datatype": "INT32", "shape": [{{rows}}, {{elements}}], "data": [{{data}}]},
              {"name": "INPUT1", "datatype": "INT32", "shape": [{{rows}}, {{elements}}], "data": [{{data}}]}
            ]}
            """;
        var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/simple/infer") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }
        return server.Http.SendAsync(request);
    }

    private static Protocol.ModelInferRequest SimpleGrpcRequest(int rows) => InferClient.BuildGrpcRequest(Simple, "",
    [
        new WireTensor("INPUT0", "INT32", [rows, 16], new byte[rows * 64]),
        new WireTensor("INPUT1", "INT32", [rows, 16], new byte[rows * 64]),
    ], raw: true);

    /// <summary>A server traced through its configuration (exporting to an OTLP receiver), with an in-memory exporter added.</summary>
    private sealed class TracedServer : IAsyncDisposable
    {
        private readonly OtlpReceiver _receiver;
        private bool _disposed;

        private TracedServer(OtlpReceiver receiver, RunningServer server, SpanLog spans)
        {
            _receiver = receiver;
            Server = server;
            Spans = spans;
        }

        public RunningServer Server { get; }

        public SpanLog Spans { get; }

        public static async Task<TracedServer> StartAsync(Dictionary<string, string?>? configuration = null)
        {
            var receiver = await OtlpReceiver.StartAsync();
            var spans = new SpanLog();
            configuration ??= [];
            configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint;
            configuration["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
            var server = await RunningServer.StartAsync(Paths.SampleModels, configuration,
                services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(spans)));
            return new TracedServer(receiver, server, spans);
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            await Server.DisposeAsync();
            await _receiver.DisposeAsync();
        }
    }

    /// <summary>The in-memory exporter's list, safe to read while the exporter adds to it.</summary>
    private sealed class SpanLog : ICollection<Activity>
    {
        private readonly List<Activity> _spans = [];

        public int Count
        {
            get
            {
                lock (_spans)
                {
                    return _spans.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        /// <summary>The spans of one trace.</summary>
        public List<Activity> Of(ActivityTraceId traceId)
        {
            lock (_spans)
            {
                return _spans.Where(s => s.TraceId == traceId).ToList();
            }
        }

        /// <summary>Waits for the server's own span named <paramref name="name"/> of a trace and for the server span it is a child of.</summary>
        public async Task<(Activity Span, Activity Server)> InferenceAsync(ActivityTraceId traceId, string model, string? name = null)
        {
            name ??= "infer " + model;
            (Activity, Activity)? found = null;
            await ShakespeareGenerationTests.WaitUntil(() =>
            {
                var spans = Of(traceId);
                var span = spans.FirstOrDefault(s => s.Source.Name == Telemetry.SourceName && s.DisplayName == name);
                var server = spans.FirstOrDefault(s => s.Kind == ActivityKind.Server);
                found = span is not null && server is not null ? (span, server) : null;
                return found is not null;
            });
            return found!.Value;
        }

        public void Add(Activity item)
        {
            lock (_spans)
            {
                _spans.Add(item);
            }
        }

        public void Clear()
        {
            lock (_spans)
            {
                _spans.Clear();
            }
        }

        public bool Contains(Activity item)
        {
            lock (_spans)
            {
                return _spans.Contains(item);
            }
        }

        public void CopyTo(Activity[] array, int arrayIndex)
        {
            lock (_spans)
            {
                _spans.CopyTo(array, arrayIndex);
            }
        }

        public bool Remove(Activity item)
        {
            lock (_spans)
            {
                return _spans.Remove(item);
            }
        }

        public IEnumerator<Activity> GetEnumerator()
        {
            lock (_spans)
            {
                return _spans.ToList().GetEnumerator();
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
