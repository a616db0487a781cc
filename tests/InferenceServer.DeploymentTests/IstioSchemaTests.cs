using System.Text.Json.Nodes;
using Xunit;

namespace InferenceServer.Tests.Deployment;

/// <summary>Every Istio resource we ship validates strictly against Istio's CRD schemas, and the validator is strict.</summary>
public sealed class IstioSchemaTests
{
    [Fact]
    public void Every_istio_document_validates_strictly_against_its_crd()
    {
        var istio = Manifests.All.Where(IstioSchema.IsIstio).ToList();
        Assert.NotEmpty(istio);
        var errors = istio.SelectMany(IstioSchema.Validate).ToList();
        Assert.True(errors.Count == 0, "Istio schema errors:\n" + string.Join("\n", errors));
    }

    [Fact]
    public void Istio_folder_holds_only_istio_resources_with_an_explicit_namespace()
    {
        var problems = Manifests.Istio
            .Where(m => !IstioSchema.IsIstio(m) && !IsRateLimitService(m))
            .Select(m => $"{m}: {m.ApiVersion} is not an Istio resource")
            .Concat(Manifests.Istio.Where(m => m.Namespace is not ("inference" or "istio-system"))
                .Select(m => $"{m}: metadata.namespace is '{m.Namespace}', expected inference or istio-system"))
            .ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    // The envoyproxy/ratelimit service (Deployment, Service, ConfigMap, Redis) lives under istio/ too (helper C's part).
    private static bool IsRateLimitService(Manifest m) => m.Source.Contains("ratelimit", StringComparison.Ordinal);

    [Fact]
    public void The_documented_versions_are_served_by_the_crds()
    {
        // The shipped manifests use networking/security/telemetry v1 (Istio 1.22+); EnvoyFilter only exists as v1alpha3.
        foreach (var m in Manifests.Istio.Where(IstioSchema.IsIstio))
        {
            var crd = IstioSchema.All[(m.Group, m.Kind, m.Version)];
            Assert.True(crd.Served, $"{m}: {m.ApiVersion} is not served");
            Assert.True(m.Version == "v1" || m.Kind is "EnvoyFilter" or "WasmPlugin", $"{m}: use the v1 API of {m.Kind}, not {m.Version}");
        }
    }

    private static Manifest Sample(string yaml) => Manifests.Parse(yaml, "inline test sample")[0];

    private const string ValidVirtualService = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata:
          name: sample
          namespace: inference
        spec:
          hosts: [inference-server.inference.svc.cluster.local]
          http:
            - route:
                - destination:
                    host: inference-server.inference.svc.cluster.local
                    subset: v1
              retries:
                attempts: 2
                perTryTimeout: 30s
                retryOn: "503"
        """;

    [Fact]
    public void A_valid_sample_passes()
    {
        Assert.Empty(IstioSchema.Validate(Sample(ValidVirtualService)));
    }

    [Fact]
    public void A_misspelled_field_is_an_error_naming_its_path()
    {
        var errors = IstioSchema.Validate(Sample(ValidVirtualService.Replace("perTryTimeout", "perTryTimout", StringComparison.Ordinal)));
        Assert.Contains(errors, e => e.Contains("VirtualService/sample", StringComparison.Ordinal) && e.Contains("perTryTimout", StringComparison.Ordinal)
            && e.Contains("http[0].retries", StringComparison.Ordinal));
    }

    [Fact]
    public void A_wrong_type_is_an_error_naming_its_path()
    {
        var errors = IstioSchema.Validate(Sample(ValidVirtualService.Replace("attempts: 2", "attempts: two", StringComparison.Ordinal)));
        Assert.Contains(errors, e => e.Contains("http[0].retries.attempts", StringComparison.Ordinal) && e.Contains("Integer", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void An_unknown_enum_value_is_an_error_naming_its_path()
    {
        var errors = IstioSchema.Validate(Sample("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: sample, namespace: inference}
            spec:
              host: inference-server
              trafficPolicy:
                loadBalancer:
                  simple: LEAST_REQUESTS
            """));
        Assert.Contains(errors, e => e.Contains("DestinationRule/sample", StringComparison.Ordinal)
            && e.Contains("trafficPolicy.loadBalancer.simple", StringComparison.Ordinal) && e.Contains("Enum", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void An_unparsable_duration_is_an_error_naming_its_path()
    {
        var errors = IstioSchema.Validate(Sample(ValidVirtualService.Replace("perTryTimeout: 30s", "perTryTimeout: 30 seconds", StringComparison.Ordinal)));
        Assert.Contains(errors, e => e.Contains("spec.http[0].retries.perTryTimeout", StringComparison.Ordinal) && e.Contains("30 seconds", StringComparison.Ordinal));
    }

    [Fact]
    public void Int_or_string_and_nullable_fields_accept_both_forms()
    {
        // AuthorizationPolicy ports are strings; the DestinationRule's warmup aggression is a nullable number.
        var errors = IstioSchema.Validate(Sample("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: sample, namespace: inference}
            spec:
              host: inference-server
              trafficPolicy:
                loadBalancer:
                  simple: LEAST_REQUEST
                  warmup: {duration: 60s, aggression: null, minimumPercent: 10}
            """));
        Assert.Empty(errors);
        var wrong = IstioSchema.Validate(Sample("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: sample, namespace: inference}
            spec:
              host: inference-server
              trafficPolicy:
                loadBalancer:
                  warmup: {duration: 60s, aggression: fast}
            """));
        Assert.Contains(wrong, e => e.Contains("warmup.aggression", StringComparison.Ordinal));
    }

    [Fact]
    public void The_strict_transform_closes_listed_properties_and_keeps_preserved_objects_open()
    {
        var schema = JsonNode.Parse("""
            {"type":"object","properties":{
              "a":{"type":"object","properties":{"b":{"type":"string"}}},
              "open":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"c":{"type":"string"}}},
              "n":{"type":"integer","nullable":true},
              "p":{"x-kubernetes-int-or-string":true}}}
            """)!.AsObject();
        var strict = IstioSchema.Strict(schema);
        Assert.False((bool)strict["additionalProperties"]!);
        Assert.False((bool)strict["properties"]!["a"]!["additionalProperties"]!);
        Assert.Null(strict["properties"]!["open"]!["additionalProperties"]);
        Assert.Equal("[\"integer\",\"null\"]", strict["properties"]!["n"]!["type"]!.ToJsonString());
        Assert.Equal(2, strict["properties"]!["p"]!["anyOf"]!.AsArray().Count);
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("500ms", 500)]
    [InlineData("0s", 0)]
    [InlineData("1.5h", 5_400_000)]
    public void Durations_parse_as_go_durations(string text, long milliseconds)
    {
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), IstioSchema.ParseDuration(text));
    }

    [Theory]
    [InlineData("30")]
    [InlineData("30 s")]
    [InlineData("s")]
    [InlineData("1d")]
    public void Non_durations_do_not_parse(string text)
    {
        Assert.Null(IstioSchema.ParseDuration(text));
    }
}
