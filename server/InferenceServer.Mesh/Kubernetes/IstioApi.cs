namespace InferenceServer.Mesh.Kubernetes;

/// <summary>The Istio custom resources mesh control reads and writes, and the field manager it writes under.</summary>
public static class IstioApi
{
    /// <summary>The field manager of meshctl's server-side applies (canary weights, per-subset EnvoyFilters).</summary>
    public const string FieldManager = "meshctl";

    /// <summary>The API group of VirtualService, DestinationRule and EnvoyFilter.</summary>
    public const string Group = "networking.istio.io";

    /// <summary>The version VirtualService and DestinationRule are read and written at.</summary>
    public const string Version = "v1";

    /// <summary>EnvoyFilter's only version.</summary>
    public const string EnvoyFilterVersion = "v1alpha3";

    public const string VirtualServices = "virtualservices";
    public const string DestinationRules = "destinationrules";
    public const string EnvoyFilters = "envoyfilters";
}
