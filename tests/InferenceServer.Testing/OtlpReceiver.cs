using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>One span as an OTLP receiver decodes it: ids in hex, attribute values as string, long, double or bool.</summary>
public sealed record OtlpSpan(
    string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, int StatusCode,
    IReadOnlyDictionary<string, object> Attributes, IReadOnlyDictionary<string, object> Resource);

/// <summary>
/// What an OpenTelemetry collector receives from the server: an OTLP/HTTP trace receiver (<c>POST /v1/traces</c>,
/// protobuf) on loopback that decodes the spans of every export. The decoding reads the OTLP trace protobuf
/// (opentelemetry-proto's trace.proto, common.proto, resource.proto) field by field, for the fields the tests need.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<OtlpSpan> _spans = new();

    private OtlpReceiver()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        _app = builder.Build();
        _app.MapPost("/v1/traces", async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            foreach (var span in Decode(body.ToArray()))
            {
                _spans.Enqueue(span);
            }
            // An empty ExportTraceServiceResponse: everything accepted.
            context.Response.ContentType = "application/x-protobuf";
            context.Response.StatusCode = StatusCodes.Status200OK;
        });
    }

    /// <summary>The receiver's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it.</summary>
    public string Endpoint => _app.Urls.First();

    /// <summary>Every span received so far.</summary>
    public IReadOnlyCollection<OtlpSpan> Spans => _spans;

    public static async Task<OtlpReceiver> StartAsync()
    {
        var receiver = new OtlpReceiver();
        await receiver._app.StartAsync();
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }</summary>
    internal static List<OtlpSpan> Decode(byte[] request)
    {
        var spans = new List<OtlpSpan>();
        foreach (var (field, resourceSpans) in Fields(request))
        {
            if (field != 1)
            {
                continue;
            }
            // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
            var resource = new Dictionary<string, object>();
            var encodedSpans = new List<byte[]>();
            foreach (var (f, value) in Fields(resourceSpans))
            {
                if (f == 1)
                {
                    // Resource { repeated KeyValue attributes = 1; }
                    foreach (var (g, attribute) in Fields(value))
                    {
                        if (g == 1)
                        {
                            AddAttribute(resource, attribute);
                        }
                    }
                }
                else if (f == 2)
                {
                    // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
                    encodedSpans.AddRange(Fields(value).Where(s => s.Field == 2).Select(s => s.Value));
                }
            }
            spans.AddRange(encodedSpans.Select(s => DecodeSpan(s, resource)));
        }
        return spans;
    }

    /// <summary>Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6; repeated KeyValue attributes = 9; Status status = 15; }</summary>
    private static OtlpSpan DecodeSpan(byte[] span, IReadOnlyDictionary<string, object> resource)
    {
        string traceId = "", spanId = "", parentSpanId = "", name = "";
        int kind = 0, status = 0;
        var attributes = new Dictionary<string, object>();
        var input = new CodedInputStream(span);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: traceId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 2: spanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 4: parentSpanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 5: name = input.ReadString(); break;
                case 6: kind = input.ReadEnum(); break;
                case 9: AddAttribute(attributes, input.ReadBytes().ToByteArray()); break;
                case 15:
                    // Status { string message = 2; StatusCode code = 3; }
                    var statusInput = new CodedInputStream(input.ReadBytes().ToByteArray());
                    uint statusTag;
                    while ((statusTag = statusInput.ReadTag()) != 0)
                    {
                        if (WireFormat.GetTagFieldNumber(statusTag) == 3)
                        {
                            status = statusInput.ReadEnum();
                        }
                        else
                        {
                            statusInput.SkipLastField();
                        }
                    }
                    break;
                default: input.SkipLastField(); break;
            }
        }
        return new OtlpSpan(traceId, spanId, parentSpanId, name, kind, status, attributes, resource);
    }

    /// <summary>KeyValue { string key = 1; AnyValue value = 2; }, AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4; }</summary>
    private static void AddAttribute(Dictionary<string, object> attributes, byte[] keyValue)
    {
        var input = new CodedInputStream(keyValue);
        string key = "";
        object? value = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1)
            {
                key = input.ReadString();
                continue;
            }
            if (WireFormat.GetTagFieldNumber(tag) != 2)
            {
                input.SkipLastField();
                continue;
            }
            var any = new CodedInputStream(input.ReadBytes().ToByteArray());
            uint anyTag;
            while ((anyTag = any.ReadTag()) != 0)
            {
                switch (WireFormat.GetTagFieldNumber(anyTag))
                {
                    case 1: value = any.ReadString(); break;
                    case 2: value = any.ReadBool(); break;
                    case 3: value = any.ReadInt64(); break;
                    case 4: value = any.ReadDouble(); break;
                    default: any.SkipLastField(); break;
                }
            }
        }
        if (value is not null)
        {
            attributes[key] = value;
        }
    }

    /// <summary>The length-delimited fields of a message (sub-messages, strings, bytes), with their numbers.</summary>
    private static List<(int Field, byte[] Value)> Fields(byte[] message)
    {
        var fields = new List<(int, byte[])>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                fields.Add((WireFormat.GetTagFieldNumber(tag), input.ReadBytes().ToByteArray()));
            }
            else
            {
                input.SkipLastField();
            }
        }
        return fields;
    }
}
