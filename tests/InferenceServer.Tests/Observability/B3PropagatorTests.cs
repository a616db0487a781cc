using System.Diagnostics;
using InferenceServer.Observability;
using OpenTelemetry;
using OpenTelemetry.Context.Propagation;
using B3Propagator = InferenceServer.Observability.B3Propagator;

namespace InferenceServer.Tests.Observability;

/// <summary>The B3 propagator alone, composed with W3C trace context and baggage, and as ASP.NET Core hosting sees it.</summary>
public sealed class B3PropagatorTests
{
    private const string TraceId = "463ac35c9f6413ad48485a3953bb6124";
    private const string SpanId = "a2fb4a1d1a96d312";

    private static readonly Func<Dictionary<string, string>, string, IEnumerable<string>?> Getter =
        (headers, name) => headers.TryGetValue(name, out var value) ? [value] : null;

    [Fact]
    public void The_x_b3_headers_give_a_remote_sampled_context()
    {
        var context = Extract(new()
        {
            ["x-b3-traceid"] = TraceId, ["x-b3-spanid"] = SpanId, ["x-b3-parentspanid"] = "0020000000000001", ["x-b3-sampled"] = "1",
        });
        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal(SpanId, context.SpanId.ToHexString());
        Assert.Equal(ActivityTraceFlags.Recorded, context.TraceFlags);
        Assert.True(context.IsRemote);
    }

    [Fact]
    public void A_64_bit_trace_id_is_left_padded_to_128_bits()
    {
        var context = Extract(new() { ["x-b3-traceid"] = "48485a3953bb6124", ["x-b3-spanid"] = SpanId, ["x-b3-sampled"] = "1" });
        Assert.Equal("000000000000000048485a3953bb6124", context.TraceId.ToHexString());
        Assert.Equal(SpanId, context.SpanId.ToHexString());
    }

    [Theory]
    [InlineData("1", null, true)]
    [InlineData("true", null, true)]
    [InlineData("0", null, false)]
    [InlineData("false", null, false)]
    [InlineData(null, null, false)]
    [InlineData(null, "1", true)] // debug implies sampled
    [InlineData("0", "1", true)]
    public void The_sampling_headers_set_the_recorded_flag(string? sampled, string? flags, bool recorded)
    {
        var headers = new Dictionary<string, string> { ["x-b3-traceid"] = TraceId, ["x-b3-spanid"] = SpanId };
        if (sampled is not null)
        {
            headers["x-b3-sampled"] = sampled;
        }
        if (flags is not null)
        {
            headers["x-b3-flags"] = flags;
        }
        var context = Extract(headers);
        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal(recorded ? ActivityTraceFlags.Recorded : ActivityTraceFlags.None, context.TraceFlags);
    }

    [Theory]
    [InlineData($"{TraceId}-{SpanId}-1-0020000000000001", true)]
    [InlineData($"{TraceId}-{SpanId}-1", true)]
    [InlineData($"{TraceId}-{SpanId}-d", true)]
    [InlineData($"{TraceId}-{SpanId}-0", false)]
    [InlineData($"{TraceId}-{SpanId}", false)]
    public void The_single_b3_header_gives_the_context_and_sampling_state(string b3, bool recorded)
    {
        var context = Extract(new() { ["b3"] = b3 });
        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal(SpanId, context.SpanId.ToHexString());
        Assert.Equal(recorded ? ActivityTraceFlags.Recorded : ActivityTraceFlags.None, context.TraceFlags);
    }

    [Fact]
    public void The_single_header_wins_over_the_x_b3_headers_and_a_lone_sampling_state_defers_to_them()
    {
        var multiple = new Dictionary<string, string> { ["x-b3-traceid"] = "0af7651916cd43dd8448eb211c80319c", ["x-b3-spanid"] = "b7ad6b7169203331", ["x-b3-sampled"] = "1" };
        Assert.Equal(TraceId, Extract(new(multiple) { ["b3"] = $"{TraceId}-{SpanId}-1" }).TraceId.ToHexString());
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", Extract(new(multiple) { ["b3"] = "1" }).TraceId.ToHexString());
        Assert.Equal(default, Extract(new() { ["b3"] = "1" }));
    }

    [Theory]
    [InlineData("463ac35c9f6413ad48485a3953bb612", SpanId)] // 31 digits
    [InlineData("463ac35c9f6413ad48485a3953bb6124ff", SpanId)]
    [InlineData("463ac35c9f6413ad48485a3953bb612x", SpanId)]
    [InlineData("00000000000000000000000000000000", SpanId)]
    [InlineData("0000000000000000", SpanId)]
    [InlineData(TraceId, "0000000000000000")]
    [InlineData(TraceId, "a2fb4a1d1a96d31")]
    [InlineData(TraceId, "")]
    public void Malformed_ids_give_no_context(string traceId, string spanId)
    {
        Assert.Equal(default, Extract(new() { ["x-b3-traceid"] = traceId, ["x-b3-spanid"] = spanId, ["x-b3-sampled"] = "1" }));
        Assert.Equal(default, Extract(new() { ["b3"] = $"{traceId}-{spanId}-1" }));
    }

    [Fact]
    public void Upper_case_hex_is_read_as_the_same_ids()
    {
        var context = Extract(new() { ["x-b3-traceid"] = TraceId.ToUpperInvariant(), ["x-b3-spanid"] = SpanId.ToUpperInvariant(), ["x-b3-sampled"] = "1" });
        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal(SpanId, context.SpanId.ToHexString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void What_is_injected_extracts_to_the_same_context(bool singleHeader)
    {
        var original = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        var headers = new Dictionary<string, string>();
        new B3Propagator(singleHeader).Inject(new PropagationContext(original, default), headers, (h, name, value) => h[name] = value);

        Assert.Equal(singleHeader ? ["b3"] : ["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"], headers.Keys.Order().ToArray());
        var extracted = Extract(headers);
        Assert.Equal(original.TraceId, extracted.TraceId);
        Assert.Equal(original.SpanId, extracted.SpanId);
        Assert.Equal(original.TraceFlags, extracted.TraceFlags);
    }

    [Fact]
    public void In_the_composite_a_traceparent_wins_and_baggage_is_kept_with_B3()
    {
        const string w3cTrace = "0af7651916cd43dd8448eb211c80319c";
        var both = Incoming(new()
        {
            ["traceparent"] = $"00-{w3cTrace}-b7ad6b7169203331-01",
            ["x-b3-traceid"] = TraceId, ["x-b3-spanid"] = SpanId, ["x-b3-sampled"] = "1",
        });
        Assert.Equal(w3cTrace, both.ActivityContext.TraceId.ToHexString());

        var b3 = Incoming(new() { ["b3"] = $"{TraceId}-{SpanId}-1", ["baggage"] = "tenant=acme" });
        Assert.Equal(TraceId, b3.ActivityContext.TraceId.ToHexString());
        Assert.Equal("acme", b3.Baggage.GetBaggage("tenant"));
    }

    [Fact]
    public void Hosting_gets_any_incoming_context_as_a_traceparent()
    {
        var propagator = new HostingPropagator(HostingPropagator.Incoming);

        propagator.ExtractTraceIdAndState(new Dictionary<string, string> { ["x-b3-traceid"] = TraceId, ["x-b3-spanid"] = SpanId, ["x-b3-sampled"] = "1" },
            HostingGetter, out var fromB3, out _);
        Assert.Equal($"00-{TraceId}-{SpanId}-01", fromB3);

        propagator.ExtractTraceIdAndState(new Dictionary<string, string> { ["traceparent"] = $"00-{TraceId}-{SpanId}-00", ["tracestate"] = "vendor=1" },
            HostingGetter, out var fromW3c, out var state);
        Assert.Equal($"00-{TraceId}-{SpanId}-00", fromW3c);
        Assert.Equal("vendor=1", state);

        propagator.ExtractTraceIdAndState(new Dictionary<string, string>(), HostingGetter, out var none, out _);
        Assert.Null(none);

        var baggage = propagator.ExtractBaggage(new Dictionary<string, string> { ["baggage"] = "tenant=acme,region=eu" }, HostingGetter);
        Assert.Equal([new("region", "eu"), new("tenant", "acme")], baggage!.OrderBy(b => b.Key).ToArray());
    }

    private static void HostingGetter(object? carrier, string name, out string? value, out IEnumerable<string>? values)
    {
        values = null;
        value = ((Dictionary<string, string>)carrier!).GetValueOrDefault(name);
    }

    private static ActivityContext Extract(Dictionary<string, string> headers) =>
        new B3Propagator().Extract(default, headers, Getter).ActivityContext;

    private static PropagationContext Incoming(Dictionary<string, string> headers) =>
        HostingPropagator.Incoming.Extract(default, headers, Getter);
}
