using System.Text.Json;

namespace InferenceServer.Client;

/// <summary>
/// A client of a KServe v2 / Triton inference server, over gRPC (<see cref="InferenceGrpcClient"/>) or REST
/// (<see cref="InferenceHttpClient"/>). Every call takes optional <see cref="CallSettings"/> (deadline, request id, tenant,
/// headers) and a cancellation token, and fails with an <see cref="InferenceServerException"/> subclass. Calls about a model
/// send the <c>x-model-name</c> and <c>x-model-version</c> headers (metadata) that the mesh routes by.
/// </summary>
public interface IInferenceClient : IDisposable
{
    /// <summary>Whether the server is live.</summary>
    Task<bool> ServerLiveAsync(CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>Whether the server is ready (false when it answers not ready).</summary>
    Task<bool> ServerReadyAsync(CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>Whether the model (version) is ready; an unknown model throws <see cref="ModelNotFoundException"/>.</summary>
    Task<bool> ModelReadyAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>The server's name, version and extensions.</summary>
    Task<ServerMetadata> ServerMetadataAsync(CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>The model's versions, platform, inputs and outputs.</summary>
    Task<ModelMetadata> ModelMetadataAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// The model's configuration in Triton's <c>ModelConfig</c> schema, as JSON with proto field names (over gRPC,
    /// protobuf's JSON mapping: 64-bit integers are strings).
    /// </summary>
    Task<JsonElement> ModelConfigAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>The statistics of the model (or of every model when <paramref name="modelName"/> is null), as JSON (<c>{"model_stats": [...]}</c>).</summary>
    Task<JsonElement> ModelStatisticsAsync(string? modelName = null, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>Every model version the repository knows, with its state.</summary>
    Task<IReadOnlyList<RepositoryModel>> RepositoryIndexAsync(bool readyOnly = false, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>Runs an inference.</summary>
    Task<InferResult> InferAsync(InferRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Generates text (REST <c>/generate</c>; gRPC <c>ModelInfer</c> with the BYTES input <c>text_input</c>, whose answer
    /// carries the text, and the finish reason and token counts only when the server sends them as response parameters).
    /// </summary>
    Task<GenerateResult> GenerateAsync(GenerateRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Generates text piece by piece (REST <c>/generate_stream</c> server-sent events; gRPC <c>ModelStreamInfer</c>). The
    /// last chunk has the finish reason. Only the connection is retried, never a stream that has started.
    /// </summary>
    IAsyncEnumerable<GenerateChunk> GenerateStreamAsync(GenerateRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default);
}
