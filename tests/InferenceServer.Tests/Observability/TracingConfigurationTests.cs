using InferenceServer.Observability;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Observability;

/// <summary>When the OTEL_* keys turn tracing on, as OpenTelemetry's SDKs read them.</summary>
public sealed class TracingConfigurationTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true, "OTEL_TRACES_EXPORTER", "otlp")]
    [InlineData(true, "OTEL_TRACES_EXPORTER", " OTLP ")]
    [InlineData(true, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]
    [InlineData(true, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")]
    [InlineData(false, "OTEL_EXPORTER_OTLP_ENDPOINT", "")]
    [InlineData(false, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_SDK_DISABLED", "true")]
    [InlineData(false, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_SDK_DISABLED", "TRUE")]
    [InlineData(true, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_SDK_DISABLED", "false")]
    [InlineData(false, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_TRACES_EXPORTER", "none")]
    [InlineData(false, "OTEL_TRACES_EXPORTER", "otlp", "OTEL_SDK_DISABLED", "true")]
    [InlineData(false, "OTEL_SERVICE_NAME", "inference-server")]
    [InlineData(false, "OTEL_TRACES_SAMPLER", "always_on")]
    public void Tracing_is_on_only_when_an_exporter_or_endpoint_asks_for_it(bool enabled, params string[] pairs)
    {
        Assert.Equal(enabled, Tracing.IsEnabled(Configuration(pairs)));
    }

    [Theory]
    [InlineData("OTEL_TRACES_EXPORTER", "zipkin", "zipkin")]
    [InlineData("OTEL_TRACES_EXPORTER", "otlp,console", "console")]
    [InlineData("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json")]
    [InlineData("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp", "udp")]
    [InlineData("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "collector:4317")]
    [InlineData("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector/v1/traces", "ftp://collector/v1/traces")]
    [InlineData("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s", "10s")]
    public void A_value_the_server_cannot_honour_is_refused_by_name(string key, string value, string named)
    {
        // Tracing on through the exporter, and the value under test.
        var error = Assert.Throws<ArgumentException>(() => Tracing.IsEnabled(Configuration(["OTEL_TRACES_EXPORTER", "otlp", key, value])));
        Assert.Contains(key, error.Message);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void OTLP_settings_are_not_checked_while_tracing_is_off()
    {
        Assert.False(Tracing.IsEnabled(Configuration(["OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"])));
        Assert.False(Tracing.IsEnabled(Configuration(["OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_SDK_DISABLED", "true"])));
    }

    [Theory]
    [InlineData("grpc")]
    [InlineData("http/protobuf")]
    public void The_OTLP_protocols_of_the_exporter_are_accepted(string protocol)
    {
        Assert.True(Tracing.IsEnabled(Configuration(["OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", protocol])));
    }

    private static IConfiguration Configuration(string[] pairs)
    {
        var values = new Dictionary<string, string?>();
        for (var i = 0; i < pairs.Length; i += 2)
        {
            values[pairs[i]] = pairs[i + 1];
        }
        return new ConfigurationBuilder().AddInMemoryCollection(values).Build();
    }
}
