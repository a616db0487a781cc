using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using InferenceServer.Http;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace InferenceServer.Observability;

/// <summary>
/// OpenTelemetry tracing, configured by OpenTelemetry's standard <c>OTEL_*</c> variables and off unless they ask for
/// it: then the server exports over OTLP a server span per REST and gRPC request (ASP.NET Core's, whose parent is the
/// caller's span from <c>traceparent</c> or B3 headers) with the server's own spans as children, one per inference
/// (<see cref="Telemetry"/>). Off, it registers nothing, so a request costs nothing more.
/// </summary>
internal static class Tracing
{
    /// <summary>The <c>service.name</c> when neither <c>OTEL_SERVICE_NAME</c> nor <c>OTEL_RESOURCE_ATTRIBUTES</c> names one.</summary>
    public const string DefaultServiceName = "inference-server";

    /// <summary>
    /// Turns tracing on when <see cref="IsEnabled"/> says so. Every <c>OTEL_*</c> key is read from the app's
    /// configuration, so environment variables, appsettings.json or an in-memory source (tests) all work; the
    /// OpenTelemetry SDK reads the rest of them (endpoint, protocol, headers, sampler, batch) the same way. Throws
    /// <see cref="ArgumentException"/> on a value the server cannot honour.
    /// </summary>
    public static IHostApplicationBuilder AddTracing(this IHostApplicationBuilder builder)
    {
        if (!IsEnabled(builder.Configuration))
        {
            return builder;
        }
        builder.Services.Replace(ServiceDescriptor.Singleton<DistributedContextPropagator>(new HostingPropagator(HostingPropagator.Incoming)));
        var version = typeof(Tracing).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        builder.Services.AddOpenTelemetry()
            // Our default name first, so that OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (read from the
            // configuration by the environment detector) override it.
            .ConfigureResource(resource => resource.Clear()
                .AddService(DefaultServiceName, serviceVersion: version)
                .AddTelemetrySdk()
                .AddEnvironmentVariableDetector())
            .WithTracing(tracing => tracing
                .AddSource(Telemetry.SourceName)
                .AddAspNetCoreInstrumentation(options => options.Filter = IsTraced)
                .AddOtlpExporter(options => ApplyTracesVariables(options, builder.Configuration)));
        return builder;
    }

    /// <summary>
    /// The SDK's <c>AddOtlpExporter</c> reads the <c>OTEL_EXPORTER_OTLP_*</c> keys but not their
    /// <c>OTEL_EXPORTER_OTLP_TRACES_*</c> overrides (only <c>UseOtlpExporter</c> does, which also exports logs and
    /// metrics): applied here. A traces endpoint is the full URL, used as it is.
    /// </summary>
    private static void ApplyTracesVariables(OtlpExporterOptions options, IConfiguration configuration)
    {
        if (configuration["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]?.Trim() is { Length: > 0 } protocol)
        {
            options.Protocol = protocol == "grpc" ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
        }
        if (configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]?.Trim() is { Length: > 0 } endpoint)
        {
            options.Endpoint = new Uri(endpoint);
        }
        if (configuration["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] is { Length: > 0 } headers)
        {
            options.Headers = headers;
        }
        if (configuration["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"]?.Trim() is { Length: > 0 } timeout)
        {
            options.TimeoutMilliseconds = int.Parse(timeout, CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// Whether <paramref name="configuration"/> asks for traces: <c>OTEL_TRACES_EXPORTER=otlp</c>, or an OTLP endpoint
    /// (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>); never with
    /// <c>OTEL_SDK_DISABLED=true</c> or <c>OTEL_TRACES_EXPORTER=none</c>. Throws <see cref="ArgumentException"/> on an
    /// exporter other than otlp or none and, when tracing is on, on an OTLP setting the exporter cannot use.
    /// </summary>
    public static bool IsEnabled(IConfiguration configuration)
    {
        if (configuration["OTEL_SDK_DISABLED"]?.Trim().Equals("true", StringComparison.OrdinalIgnoreCase) == true)
        {
            return false;
        }
        var exporters = (configuration["OTEL_TRACES_EXPORTER"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var exporter in exporters)
        {
            if (!exporter.Equals("otlp", StringComparison.OrdinalIgnoreCase) && !exporter.Equals("none", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"OTEL_TRACES_EXPORTER: the server exports traces over OTLP only; '{exporter}' is not supported (use otlp or none)");
            }
        }
        if (exporters.Contains("none", StringComparer.OrdinalIgnoreCase))
        {
            return false;
        }
        var enabled = exporters.Length > 0
            || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])
            || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
        if (enabled)
        {
            ValidateOtlp(configuration);
        }
        return enabled;
    }

    /// <summary>What the exporter would otherwise ignore with a warning nobody reads, or fail on with a stack trace.</summary>
    private static void ValidateOtlp(IConfiguration configuration)
    {
        foreach (var key in (string[])["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
        {
            if (configuration[key]?.Trim() is { Length: > 0 } protocol && protocol is not ("grpc" or "http/protobuf"))
            {
                throw new ArgumentException($"{key}: '{protocol}' is not supported (use grpc or http/protobuf)");
            }
        }
        foreach (var key in (string[])["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
        {
            if (configuration[key]?.Trim() is { Length: > 0 } endpoint
                && !(Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
            {
                throw new ArgumentException($"{key}: '{endpoint}' is not an http or https URL");
            }
        }
        if (configuration["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"]?.Trim() is { Length: > 0 } timeout
            && !(int.TryParse(timeout, NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds > 0))
        {
            throw new ArgumentException($"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '{timeout}' is not a number of milliseconds");
        }
    }

    /// <summary>Probes and scrapes are not traced: they would drown the traces of requests.</summary>
    private static bool IsTraced(HttpContext context)
    {
        var path = context.Request.Path;
        return !path.StartsWithSegments("/v2/health")
            && !path.StartsWithSegments(MetricsEndpoint.Path)
            && !path.StartsWithSegments("/grpc.health.v1.Health");
    }
}
