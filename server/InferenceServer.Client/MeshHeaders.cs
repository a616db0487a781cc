namespace InferenceServer.Client;

/// <summary>The headers (gRPC metadata keys) the clients send for the mesh.</summary>
public static class MeshHeaders
{
    /// <summary>The model a call is about; the Istio VirtualService routes gRPC by it.</summary>
    public const string ModelName = "x-model-name";

    /// <summary>The model version a call asks for, when it names one.</summary>
    public const string ModelVersion = "x-model-version";

    /// <summary>The request id the server logs and echoes.</summary>
    public const string RequestId = "x-request-id";
}
