using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Context.Propagation;

namespace InferenceServer.Observability;

/// <summary>
/// Lets ASP.NET Core's hosting layer, which starts the server span of every REST and gRPC request and asks the
/// <see cref="DistributedContextPropagator"/> in its services for the caller's context, read that context with an
/// OpenTelemetry <see cref="TextMapPropagator"/>: W3C trace context and baggage, then B3. Registered in the app's own
/// services, so nothing process-wide (<see cref="DistributedContextPropagator.Current"/>, OpenTelemetry's default
/// propagator) changes.
/// </summary>
internal sealed class HostingPropagator : DistributedContextPropagator
{
    private readonly TextMapPropagator _propagator;
    private readonly string[] _fields;

    public HostingPropagator(TextMapPropagator propagator)
    {
        ArgumentNullException.ThrowIfNull(propagator);
        _propagator = propagator;
        _fields = [.. propagator.Fields ?? new HashSet<string>()];
    }

    /// <summary>What the server accepts: <c>traceparent</c>/<c>tracestate</c>, <c>baggage</c>, then <c>b3</c> or <c>x-b3-*</c>.</summary>
    public static TextMapPropagator Incoming { get; } = new CompositeTextMapPropagator(
        [new TraceContextPropagator(), new BaggagePropagator(), new B3Propagator()]);

    /// <inheritdoc />
    public override IReadOnlyCollection<string> Fields => _fields;

    /// <summary>Hands hosting the caller's context as a W3C <c>traceparent</c>, whichever headers carried it.</summary>
    public override void ExtractTraceIdAndState(object? carrier, PropagatorGetterCallback? getter, out string? traceId, out string? traceState)
    {
        traceId = null;
        traceState = null;
        if (getter is null)
        {
            return;
        }
        var context = _propagator.Extract(default, (carrier, getter), Get).ActivityContext;
        if (IsValid(context))
        {
            traceId = $"00-{context.TraceId.ToHexString()}-{context.SpanId.ToHexString()}-{(byte)context.TraceFlags:x2}";
            traceState = context.TraceState;
        }
    }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, string?>>? ExtractBaggage(object? carrier, PropagatorGetterCallback? getter)
    {
        if (getter is null)
        {
            return null;
        }
        var baggage = _propagator.Extract(default, (carrier, getter), Get).Baggage;
        return baggage.Count == 0 ? null : baggage.GetBaggage().Select(static b => new KeyValuePair<string, string?>(b.Key, b.Value)).ToArray();
    }

    /// <inheritdoc />
    public override void Inject(Activity? activity, object? carrier, PropagatorSetterCallback? setter)
    {
        if (activity is null || setter is null)
        {
            return;
        }
        var items = new Dictionary<string, string>();
        foreach (var (key, value) in activity.Baggage)
        {
            // An activity lists its newest value of a key first.
            if (value is not null)
            {
                items.TryAdd(key, value);
            }
        }
        var baggage = Baggage.Create(items);
        _propagator.Inject(new PropagationContext(activity.Context, baggage), (carrier, setter), static (c, name, value) => c.setter(c.carrier, name, value));
    }

    private static IEnumerable<string>? Get((object? Carrier, PropagatorGetterCallback Getter) c, string name)
    {
        c.Getter(c.Carrier, name, out var value, out var values);
        return values ?? (string.IsNullOrEmpty(value) ? null : [value]);
    }

    private static bool IsValid(ActivityContext context) => context.TraceId != default && context.SpanId != default;
}
