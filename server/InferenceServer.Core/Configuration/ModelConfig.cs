using InferenceServer.Tensors;

namespace InferenceServer.Configuration;

/// <summary>One input or output of a model: name, element type and dimensions (-1 is variable; without the batch dimension when the model batches).</summary>
public sealed record TensorConfig(string Name, DataType DataType, long[] Dims, bool Optional = false);

/// <summary>
/// A model's complete configuration: what <c>config.yaml</c> said, completed from the model itself. This is what
/// requests are validated against and what the configuration endpoint returns.
/// </summary>
public sealed class ModelConfig
{
    /// <summary>The model's name (its directory in the repository).</summary>
    public required string Name { get; init; }

    /// <summary>The backend that runs the model ("onnxruntime").</summary>
    public string Backend { get; init; } = "onnxruntime";

    /// <summary>Triton's platform string for the backend ("onnxruntime_onnx").</summary>
    public string Platform { get; init; } = "onnxruntime_onnx";

    /// <summary>Largest batch a request may carry; 0 when the model has no batch dimension.</summary>
    public int MaxBatchSize { get; init; }

    /// <summary>The inputs (dims exclude the batch dimension when <see cref="MaxBatchSize"/> &gt; 0).</summary>
    public required IReadOnlyList<TensorConfig> Inputs { get; init; }

    /// <summary>The outputs (dims exclude the batch dimension when <see cref="MaxBatchSize"/> &gt; 0).</summary>
    public required IReadOnlyList<TensorConfig> Outputs { get; init; }

    /// <summary>Which versions in the repository are served.</summary>
    public VersionPolicy VersionPolicy { get; init; } = VersionPolicy.Latest(1);

    /// <summary>The file inside a version directory that holds the model.</summary>
    public string DefaultModelFilename { get; init; } = "model.onnx";

    /// <summary>The device of the first instance ("cpu", "cuda:0").</summary>
    public string Device => InstanceDevices[0];

    /// <summary>The execution provider the engine actually uses ("CPUExecutionProvider", "CUDAExecutionProvider").</summary>
    public string ExecutionProvider { get; init; } = "CPUExecutionProvider";

    /// <summary>Whether a model asked to run on a GPU may fall back to the CPU when the runtime has no GPU support.</summary>
    public bool AllowCpuFallback { get; init; }

    /// <summary>Batching and queue settings; null means requests run one at a time as they arrive (still queued, bounded).</summary>
    public DynamicBatchingConfig? DynamicBatching { get; init; }

    /// <summary>The scheduler's queue settings (always present).</summary>
    public QueueConfig Queue { get; init; } = new();

    /// <summary>The device of each engine instance, in order (at least one).</summary>
    public IReadOnlyList<string> InstanceDevices { get; init; } = ["cpu"];

    /// <summary>Free-form parameters (backend settings such as <c>intra_op_num_threads</c>).</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; init; } = new Dictionary<string, string>();

    /// <summary>For a generative model, how it generates text (its <c>generation</c> section, resolved); null for tensor models.</summary>
    public GenerationSettings? Generation { get; init; }

    /// <summary>The circuit breaker around the engine (its <c>circuit_breaker</c> section); null: none.</summary>
    public CircuitBreakerOptions? CircuitBreaker { get; init; }

    /// <summary>
    /// Where each value came from, by configuration key (<c>max_batch_size</c>, <c>input.NAME</c>, <c>dynamic_batching</c>,
    /// …): a configuration file's name (<c>config.yaml</c>), <see cref="ConfigSources.Model"/> (derived from the model
    /// itself) or <see cref="ConfigSources.Default"/>. See <see cref="ModelConfigResolver"/> for the precedence.
    /// </summary>
    public IReadOnlyDictionary<string, string> Provenance { get; init; } = new Dictionary<string, string>();

    /// <summary>The names of <see cref="Outputs"/>, in order (what a request that names no outputs gets).</summary>
    public IReadOnlyList<string> OutputNames => _outputNames ??= Outputs.Select(o => o.Name).ToArray();

    private string[]? _outputNames;

    /// <summary>The input called <paramref name="name"/>, or null.</summary>
    public TensorConfig? FindInput(string name) => Find(Inputs, name);

    /// <summary>The output called <paramref name="name"/>, or null.</summary>
    public TensorConfig? FindOutput(string name) => Find(Outputs, name);

    private static TensorConfig? Find(IReadOnlyList<TensorConfig> tensors, string name)
    {
        foreach (var t in tensors)
        {
            if (t.Name == name)
            {
                return t;
            }
        }
        return null;
    }
}

/// <summary>Dynamic batching: combine queued requests into one execution.</summary>
public sealed record DynamicBatchingConfig(long MaxQueueDelayMicroseconds, IReadOnlyList<int> PreferredBatchSizes);

/// <summary>The request queue of a model: bound, priority levels, timeouts.</summary>
public sealed record QueueConfig
{
    /// <summary>Most requests waiting; more are rejected at once (429 / RESOURCE_EXHAUSTED).</summary>
    public int MaxQueueSize { get; init; } = 1024;

    /// <summary>Priority levels (1 is the highest); at least 1.</summary>
    public int PriorityLevels { get; init; } = 1;

    /// <summary>The level of requests that name none.</summary>
    public int DefaultPriorityLevel { get; init; } = 1;

    /// <summary>Deadline for requests that carry none; 0 for none.</summary>
    public long DefaultTimeoutMicroseconds { get; init; }

    /// <summary>Whether a request's timeout parameter may extend past the default timeout.</summary>
    public bool AllowTimeoutOverride { get; init; }
}

/// <summary>Which of the numbered version directories a model serves.</summary>
public abstract record VersionPolicy
{
    /// <summary>The <paramref name="count"/> highest versions (Triton's default is 1).</summary>
    public static VersionPolicy Latest(int count) => new LatestPolicy(count);

    /// <summary>Every version present.</summary>
    public static VersionPolicy All { get; } = new AllPolicy();

    /// <summary>Exactly the listed versions (those present).</summary>
    public static VersionPolicy Specific(IReadOnlyList<long> versions) => new SpecificPolicy(versions);

    /// <summary>The versions to serve out of those present.</summary>
    public abstract IReadOnlyList<long> Select(IReadOnlyList<long> available);

    /// <summary>Serve the highest <see cref="Count"/> versions.</summary>
    public sealed record LatestPolicy(int Count) : VersionPolicy
    {
        /// <inheritdoc />
        public override IReadOnlyList<long> Select(IReadOnlyList<long> available) => available.OrderDescending().Take(Count).Order().ToArray();
    }

    /// <summary>Serve every version.</summary>
    public sealed record AllPolicy : VersionPolicy
    {
        /// <inheritdoc />
        public override IReadOnlyList<long> Select(IReadOnlyList<long> available) => available.Order().ToArray();
    }

    /// <summary>Serve the listed versions.</summary>
    public sealed record SpecificPolicy(IReadOnlyList<long> Versions) : VersionPolicy
    {
        /// <inheritdoc />
        public override IReadOnlyList<long> Select(IReadOnlyList<long> available) => available.Where(Versions.Contains).Order().ToArray();
    }
}
