namespace InferenceServer.Client;

/// <summary>An inference request: the model, its inputs, and optionally which outputs to return.</summary>
public sealed class InferRequest
{
    /// <summary>A request for <paramref name="modelName"/> with <paramref name="inputs"/>.</summary>
    public InferRequest(string modelName, params IEnumerable<Tensor> inputs)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelName);
        ModelName = modelName;
        Inputs = inputs.ToList();
    }

    /// <summary>The model's name.</summary>
    public string ModelName { get; }

    /// <summary>The model version, or null for the highest ready one.</summary>
    public string? ModelVersion { get; init; }

    /// <summary>The inputs.</summary>
    public IList<Tensor> Inputs { get; }

    /// <summary>The outputs to return (by name); empty for all of them.</summary>
    public IList<string> Outputs { get; init; } = [];

    /// <summary>An id the server echoes in the response (the protocol's <c>id</c> field).</summary>
    public string? Id { get; init; }

    /// <summary>Request parameters (values: string, bool, integers or floating point).</summary>
    public IDictionary<string, object> Parameters { get; init; } = new Dictionary<string, object>();
}

/// <summary>An inference response.</summary>
public sealed class InferResult
{
    /// <summary>Creates a result.</summary>
    public InferResult(string modelName, string modelVersion, string? id, IReadOnlyList<Tensor> outputs)
    {
        ModelName = modelName;
        ModelVersion = modelVersion;
        Id = id;
        Outputs = outputs;
    }

    /// <summary>The model that answered.</summary>
    public string ModelName { get; }

    /// <summary>The version that answered.</summary>
    public string ModelVersion { get; }

    /// <summary>The request's id, when it had one.</summary>
    public string? Id { get; }

    /// <summary>The outputs, in the server's order.</summary>
    public IReadOnlyList<Tensor> Outputs { get; }

    /// <summary>The output called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No output has that name.</exception>
    public Tensor Output(string name) => Outputs.FirstOrDefault(o => o.Name == name)
        ?? throw new KeyNotFoundException($"the response has no output '{name}'; it has {string.Join(", ", Outputs.Select(o => $"'{o.Name}'"))}");
}

/// <summary>The sampling and stopping fields of a generation (null: the server's default).</summary>
public sealed class GenerateParameters
{
    /// <summary>The most tokens to generate.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>0 = greedy.</summary>
    public double? Temperature { get; init; }
    /// <summary>Nucleus sampling.</summary>
    public double? TopP { get; init; }
    /// <summary>Top-k sampling (0 or -1 = off).</summary>
    public int? TopK { get; init; }
    /// <summary>A seed for reproducible sampling.</summary>
    public long? Seed { get; init; }
    /// <summary>Stop strings (over gRPC only the first is sent).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Keep generating past the end-of-sequence token.</summary>
    public bool? IgnoreEos { get; init; }
}

/// <summary>A text generation request (Triton's generate extension).</summary>
public sealed class GenerateRequest(string modelName, string textInput)
{
    /// <summary>The generative model.</summary>
    public string ModelName { get; } = modelName;
    /// <summary>The prompt.</summary>
    public string TextInput { get; } = textInput;
    /// <summary>The version, or null for the highest ready one.</summary>
    public string? ModelVersion { get; init; }
    /// <summary>An id echoed in the responses.</summary>
    public string? Id { get; init; }
    /// <summary>Sampling and stopping.</summary>
    public GenerateParameters Parameters { get; init; } = new();
}

/// <summary>A piece of generated text; the last piece of a generation has <see cref="FinishReason"/> and the counts.</summary>
public sealed record GenerateChunk(
    string ModelName, string ModelVersion, string TextOutput, string? FinishReason, int? PromptTokens, int? CompletionTokens, string? Id)
{
    /// <summary>Whether this is the generation's last piece.</summary>
    public bool IsFinal => FinishReason is not null;
}

/// <summary>A whole generation.</summary>
public sealed record GenerateResult(
    string ModelName, string ModelVersion, string TextOutput, string? FinishReason, int? PromptTokens, int? CompletionTokens, string? Id);

/// <summary>The server's name, version and protocol extensions.</summary>
public sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary>An input or output of a model (-1 marks a variable dimension).</summary>
public sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>A model's ready versions, platform, inputs and outputs.</summary>
public sealed record ModelMetadata(
    string Name, IReadOnlyList<string> Versions, string Platform, IReadOnlyList<TensorMetadata> Inputs, IReadOnlyList<TensorMetadata> Outputs);

/// <summary>One model version of the repository index.</summary>
public sealed record RepositoryModel(string Name, string Version, string State, string Reason);
