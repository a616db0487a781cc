using InferenceServer.Tensors;

namespace InferenceServer.Inference;

/// <summary>The result of one request: output tensors over pooled buffers. Disposing it returns the buffers.</summary>
public sealed class InferenceResponse : IDisposable
{
    /// <summary>Creates an empty response for the model version that served the request.</summary>
    public InferenceResponse(string modelName, string modelVersion, string id)
    {
        ModelName = modelName;
        ModelVersion = modelVersion;
        Id = id;
    }

    /// <summary>The model that served the request.</summary>
    public string ModelName { get; }

    /// <summary>The version that served the request.</summary>
    public string ModelVersion { get; }

    /// <summary>The request's id, echoed.</summary>
    public string Id { get; }

    /// <summary>
    /// Set when a fallback model served the request because the requested model's circuit breaker was open: the model
    /// the client asked for (<see cref="ModelName"/> and <see cref="ModelVersion"/> name the fallback that served it).
    /// </summary>
    public string? FallbackFor { get; set; }

    /// <summary>"name/version" of the model that served the request (the <c>x-served-by-model</c> header's value).</summary>
    public string ServedBy => ModelName + "/" + ModelVersion;

    /// <summary>The output tensors, in the order the model (or the request) names them.</summary>
    public List<Tensor> Outputs { get; } = [];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var output in Outputs)
        {
            output.Dispose();
        }
        Outputs.Clear();
    }
}
