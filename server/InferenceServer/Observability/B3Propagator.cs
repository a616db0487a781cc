using System.Buffers;
using System.Diagnostics;
using OpenTelemetry.Context.Propagation;

namespace InferenceServer.Observability;

/// <summary>
/// Zipkin's B3 trace context (https://github.com/openzipkin/b3-propagation), which Envoy — and so Istio's sidecars —
/// send: the single <c>b3</c> header or the <c>x-b3-*</c> headers. Extraction reads both, the single header first
/// (as OpenTelemetry's propagator specification asks); a 64-bit trace id is left-padded with zeros to 128 bits. The
/// sampling state maps to the recorded flag: <c>1</c>, <c>true</c> or debug (<c>d</c>, <c>x-b3-flags: 1</c>) are
/// sampled; <c>0</c>, <c>false</c> or no decision are not. When an earlier propagator of a composite (W3C
/// <c>traceparent</c>) has already found a context, that one wins.
/// </summary>
internal sealed class B3Propagator : TextMapPropagator
{
    internal const string SingleHeader = "b3";
    internal const string TraceIdHeader = "x-b3-traceid";
    internal const string SpanIdHeader = "x-b3-spanid";
    internal const string ParentSpanIdHeader = "x-b3-parentspanid";
    internal const string SampledHeader = "x-b3-sampled";
    internal const string FlagsHeader = "x-b3-flags";

    private static readonly HashSet<string> AllFields = [SingleHeader, TraceIdHeader, SpanIdHeader, ParentSpanIdHeader, SampledHeader, FlagsHeader];
    private static readonly SearchValues<char> Hex = SearchValues.Create("0123456789abcdefABCDEF");

    private readonly bool _singleHeader;

    /// <summary>Injects the single <c>b3</c> header (the specification's default), or the <c>x-b3-*</c> headers when <paramref name="singleHeader"/> is false.</summary>
    public B3Propagator(bool singleHeader = true) => _singleHeader = singleHeader;

    /// <inheritdoc />
    public override ISet<string> Fields => AllFields;

    /// <inheritdoc />
    public override PropagationContext Extract<T>(PropagationContext context, T carrier, Func<T, string, IEnumerable<string>?> getter)
    {
        if (IsValid(context.ActivityContext) || carrier is null || getter is null)
        {
            return context;
        }
        var found = First(getter(carrier, SingleHeader)) is { } single ? ParseSingle(single) : null;
        found ??= ParseMultiple(carrier, getter);
        return found is { } activityContext ? new PropagationContext(activityContext, context.Baggage) : context;
    }

    /// <inheritdoc />
    public override void Inject<T>(PropagationContext context, T carrier, Action<T, string, string> setter)
    {
        var activityContext = context.ActivityContext;
        if (!IsValid(activityContext) || carrier is null || setter is null)
        {
            return;
        }
        var sampled = (activityContext.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? "1" : "0";
        if (_singleHeader)
        {
            setter(carrier, SingleHeader, $"{activityContext.TraceId.ToHexString()}-{activityContext.SpanId.ToHexString()}-{sampled}");
            return;
        }
        setter(carrier, TraceIdHeader, activityContext.TraceId.ToHexString());
        setter(carrier, SpanIdHeader, activityContext.SpanId.ToHexString());
        setter(carrier, SampledHeader, sampled);
    }

    /// <summary><c>{trace id}-{span id}[-{sampling state}[-{parent span id}]]</c>; a lone sampling state carries no context.</summary>
    private static ActivityContext? ParseSingle(string value)
    {
        var parts = value.Trim().Split('-');
        if (parts.Length < 2 || parts.Length > 4 || !TryParseTraceId(parts[0], out var traceId) || !TryParseSpanId(parts[1], out var spanId))
        {
            return null;
        }
        var sampled = parts.Length > 2 && parts[2] is "1" or "d";
        return new ActivityContext(traceId, spanId, sampled ? ActivityTraceFlags.Recorded : ActivityTraceFlags.None, isRemote: true);
    }

    private static ActivityContext? ParseMultiple<T>(T carrier, Func<T, string, IEnumerable<string>?> getter)
    {
        if (!TryParseTraceId(First(getter(carrier, TraceIdHeader)), out var traceId) || !TryParseSpanId(First(getter(carrier, SpanIdHeader)), out var spanId))
        {
            return null;
        }
        var sampled = First(getter(carrier, SampledHeader))?.Trim() is { } state && (state == "1" || state.Equals("true", StringComparison.OrdinalIgnoreCase));
        var debug = First(getter(carrier, FlagsHeader))?.Trim() == "1";
        return new ActivityContext(traceId, spanId, sampled || debug ? ActivityTraceFlags.Recorded : ActivityTraceFlags.None, isRemote: true);
    }

    /// <summary>16 or 32 hex digits, not all zero; 64-bit ids become the low half of a 128-bit one.</summary>
    private static bool TryParseTraceId(string? value, out ActivityTraceId traceId)
    {
        traceId = default;
        value = value?.Trim();
        if (value is null || (value.Length != 16 && value.Length != 32) || value.AsSpan().ContainsAnyExcept(Hex))
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        Convert.FromHexString(value, bytes[(16 - value.Length / 2)..], out _, out _);
        if (!bytes.ContainsAnyExcept((byte)0))
        {
            return false;
        }
        traceId = ActivityTraceId.CreateFromBytes(bytes);
        return true;
    }

    /// <summary>16 hex digits, not all zero.</summary>
    private static bool TryParseSpanId(string? value, out ActivitySpanId spanId)
    {
        spanId = default;
        value = value?.Trim();
        if (value is null || value.Length != 16 || value.AsSpan().ContainsAnyExcept(Hex))
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[8];
        Convert.FromHexString(value, bytes, out _, out _);
        if (!bytes.ContainsAnyExcept((byte)0))
        {
            return false;
        }
        spanId = ActivitySpanId.CreateFromBytes(bytes);
        return true;
    }

    private static string? First(IEnumerable<string>? values)
    {
        if (values is null)
        {
            return null;
        }
        foreach (var value in values)
        {
            if (!string.IsNullOrWhiteSpace(value))
            {
                return value;
            }
        }
        return null;
    }

    private static bool IsValid(ActivityContext context) => context.TraceId != default && context.SpanId != default;
}
