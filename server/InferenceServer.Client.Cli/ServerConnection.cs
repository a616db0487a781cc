using System.Runtime.CompilerServices;
using InferenceServer.Client;
using InferenceServer.Client.Cli.Tensors;

namespace InferenceServer.Client.Cli;

/// <summary>Where and how to reach the server: the common options of every command.</summary>
internal sealed record ConnectionSettings(string Url, string? Grpc, TimeSpan? Timeout, int Retries, IReadOnlyDictionary<string, string> Headers)
{
    /// <summary>What the messages call the server.</summary>
    public string Target => Grpc is null ? Url : $"grpc://{Grpc}";
}

/// <summary>Generation settings of <c>infer generate</c>.</summary>
internal sealed record GenerateSettings(int? MaxTokens, double? Temperature);

/// <summary>The calls the commands make, over the client SDK (REST or gRPC by the settings).</summary>
internal sealed class ServerConnection : IAsyncDisposable
{
    private readonly IInferenceClient _client;
    private readonly CallSettings _call;

    public ServerConnection(ConnectionSettings settings, bool binary = false)
    {
        Settings = settings;
        var options = new InferenceClientOptions
        {
            DefaultTimeout = settings.Timeout,
            Retry = RetryPolicy.Default with { MaxRetries = settings.Retries },
            HttpEncoding = binary ? HttpTensorEncoding.Binary : HttpTensorEncoding.Auto,
        };
        _client = settings.Grpc is { } grpc
            ? new InferenceGrpcClient(new Uri(grpc.Contains("://", StringComparison.Ordinal) ? grpc : $"http://{grpc}"), options)
            : new InferenceHttpClient(new Uri(settings.Url), options);
        _call = new CallSettings { Headers = settings.Headers };
    }

    public ConnectionSettings Settings { get; }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }

    public Task<bool> LiveAsync(CancellationToken cancellationToken) => _client.ServerLiveAsync(_call, cancellationToken);

    public Task<bool> ReadyAsync(CancellationToken cancellationToken) => _client.ServerReadyAsync(_call, cancellationToken);

    public Task<bool> ModelReadyAsync(string model, string? version, CancellationToken cancellationToken) =>
        _client.ModelReadyAsync(model, version, _call, cancellationToken);

    public Task<IReadOnlyList<RepositoryModel>> ModelsAsync(CancellationToken cancellationToken) =>
        _client.RepositoryIndexAsync(false, _call, cancellationToken);

    public Task<ModelMetadata> MetadataAsync(string model, string? version, CancellationToken cancellationToken) =>
        _client.ModelMetadataAsync(model, version, _call, cancellationToken);

    public Task<InferResult> InferAsync(string model, string? version, IReadOnlyList<Tensor> inputs, IReadOnlyList<string> outputs, CancellationToken cancellationToken) =>
        _client.InferAsync(new InferRequest(model, inputs) { ModelVersion = version, Outputs = outputs.ToList() }, _call, cancellationToken);

    public async Task<string> GenerateAsync(string model, string prompt, GenerateSettings settings, CancellationToken cancellationToken) =>
        (await _client.GenerateAsync(ToSdk(model, prompt, settings), _call, cancellationToken)).TextOutput;

    public async IAsyncEnumerable<string> GenerateStreamAsync(string model, string prompt, GenerateSettings settings, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var chunk in _client.GenerateStreamAsync(ToSdk(model, prompt, settings), _call, cancellationToken))
        {
            if (chunk.TextOutput.Length > 0)
            {
                yield return chunk.TextOutput;
            }
        }
    }

    /// <summary>The message of a failed call: the SDK's typed exception names the status; other failures their cause.</summary>
    public static string? FailureMessage(Exception exception) => exception switch
    {
        ModelNotFoundException e => $"not found: {e.Message}",
        InvalidInputException e => $"the server refused the request: {e.Message}",
        RateLimitedException e => $"rate limited{(e.RetryAfter is { } after ? $" (retry after {after.TotalSeconds:0.#} s)" : "")}: {e.Message}",
        UnavailableException e => $"unavailable: {e.Message}",
        DeadlineExceededException e => $"deadline exceeded: {e.Message}",
        InferenceServerException e => e.Message,
        HttpRequestException e => $"cannot reach the server: {e.Message}",
        TimeoutException e => $"timed out: {e.Message}",
        _ => null,
    };

    private static GenerateRequest ToSdk(string model, string prompt, GenerateSettings settings) =>
        new(model, prompt) { Parameters = new GenerateParameters { MaxTokens = settings.MaxTokens, Temperature = settings.Temperature } };
}
