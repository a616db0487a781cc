using InferenceServer.Client.Cli.Tensors;

namespace InferenceServer.Client.Cli;

/// <summary>Where and how to reach the server: the common options of every command.</summary>
internal sealed record ConnectionSettings(string Url, string? Grpc, TimeSpan? Timeout, int Retries, IReadOnlyDictionary<string, string> Headers)
{
    /// <summary>What the messages call the server.</summary>
    public string Target => Grpc is null ? Url : $"grpc://{Grpc}";
}

/// <summary>One model of the repository index.</summary>
internal sealed record RepositoryEntry(string Name, string? Version, string? State, string? Reason);

/// <summary>A tensor's name, datatype and shape in a model's metadata.</summary>
internal sealed record TensorSignature(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>A model's metadata.</summary>
internal sealed record ModelSignature(string Name, IReadOnlyList<string> Versions, string? Platform, IReadOnlyList<TensorSignature> Inputs, IReadOnlyList<TensorSignature> Outputs);

/// <summary>Generation settings of <c>infer generate</c>.</summary>
internal sealed record GenerateSettings(int? MaxTokens, double? Temperature);

/// <summary>The calls the commands make, over the client SDK (REST or gRPC by the settings).</summary>
internal sealed partial class ServerConnection : IAsyncDisposable
{
    public ServerConnection(ConnectionSettings settings)
    {
        Settings = settings;
    }

    public ConnectionSettings Settings { get; }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public Task<bool> LiveAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public Task<bool> ReadyAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public Task<bool> ModelReadyAsync(string model, string? version, CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public Task<IReadOnlyList<RepositoryEntry>> ModelsAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public Task<ModelSignature> MetadataAsync(string model, string? version, CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public Task<InferResult> InferAsync(string model, string? version, IReadOnlyList<HostTensor> inputs, IReadOnlyList<string> outputs, bool binary, CancellationToken cancellationToken) =>
        throw new NotSupportedException("the client SDK is not merged yet");

    public Task<string> GenerateAsync(string model, string prompt, GenerateSettings settings, CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    public IAsyncEnumerable<string> GenerateStreamAsync(string model, string prompt, GenerateSettings settings, CancellationToken cancellationToken) => throw new NotSupportedException("the client SDK is not merged yet");

    /// <summary>The message of a failed call (the SDK's typed exception), or null when the exception is not one.</summary>
    public static string? FailureMessage(Exception exception) => exception switch
    {
        HttpRequestException http => $"cannot reach the server: {http.Message}",
        _ => null,
    };
}
