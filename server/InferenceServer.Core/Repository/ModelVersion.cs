using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Observability;
using InferenceServer.Scheduling;
using InferenceServer.Statistics;

namespace InferenceServer.Repository;

/// <summary>The state of a model version, as the repository index reports it.</summary>
public enum ModelState
{
    /// <summary>Being loaded.</summary>
    Loading,
    /// <summary>Serving.</summary>
    Ready,
    /// <summary>Not serving; see the reason.</summary>
    Unavailable,
    /// <summary>Being unloaded.</summary>
    Unloading,
}

/// <summary>
/// One version of a model: its state, configuration, statistics and, when ready, the loaded backend model.
/// Requests hold a reference (<see cref="ModelLease"/>) so an unload waits for them before the engine is released.
/// </summary>
public sealed class ModelVersion
{
    // The version's one runner while it serves (null for a version that is loading or failed).
    private readonly IModelRunner? _runner;
    private int _references;

    private ModelVersion(string name, long version, ModelState state, string reason, ModelConfig? config)
    {
        Name = name;
        Version = version;
        State = state;
        Reason = reason;
        Config = config;
    }

    /// <summary>A serving version: its one runner, the continuous batcher of a generative model or the scheduler of a tensor model.</summary>
    private ModelVersion(string name, long version, ModelConfig config, IReadOnlyList<IBackendModel> instances, ServerMetrics metrics, GenerationModel? generation)
        : this(name, version, ModelState.Ready, "", config)
    {
        var label = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Statistics.Export(metrics.ForRequests(name, label));
        Generation = generation;
        _runner = generation is not null
            ? new ContinuousBatcher(config, label, generation, instances, Statistics, metrics.ForGeneration(name, label))
            : new ModelScheduler(config, version, instances, Statistics);
        _references = 1;
    }

    /// <summary>The reason given to versions taken down by an unload.</summary>
    public const string UnloadedReason = "unloaded";

    /// <summary>The model's name.</summary>
    public string Name { get; }

    /// <summary>The version number.</summary>
    public long Version { get; }

    /// <summary>The state.</summary>
    public ModelState State { get; private set; }

    /// <summary>Why it is not ready (empty when ready).</summary>
    public string Reason { get; private set; }

    /// <summary>Whether an unload took this version down (the model then counts as not loaded, not as broken).</summary>
    public bool IsUnloaded => State == ModelState.Unavailable && Reason == UnloadedReason;

    /// <summary>The complete configuration; null when loading failed before it could be derived.</summary>
    public ModelConfig? Config { get; }

    /// <summary>When the version became ready (Unix seconds; OpenAI's "created").</summary>
    public long LoadedUnixSeconds { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>Statistics of the requests this version served.</summary>
    public ModelStatistics Statistics { get; } = new();

    internal static ModelVersion Ready(
        string name, long version, ModelConfig config, IReadOnlyList<IBackendModel> instances, ServerMetrics metrics, GenerationModel? generation = null, Admission.CircuitBreaker? breaker = null) =>
        new(name, version, config, instances, metrics, generation) { Breaker = breaker };

    /// <summary>A generative version's tokenizer, chat template and settings; null for a tensor model.</summary>
    public GenerationModel? Generation { get; }

    /// <summary>The circuit breaker around this version's engine (its configuration's <c>circuit_breaker</c>); null: none.</summary>
    public Admission.CircuitBreaker? Breaker { get; private init; }

    internal static ModelVersion Failed(string name, long version, string reason, ModelConfig? config = null) =>
        new(name, version, ModelState.Unavailable, reason, config);

    /// <summary>A version being loaded (and warmed up): what the index and the probes see until the load finishes.</summary>
    internal static ModelVersion Loading(string name, long version) =>
        new(name, version, ModelState.Loading, LoadingReason, null);

    /// <summary>The reason of a version whose engine instances are being loaded.</summary>
    public const string LoadingReason = "loading";

    /// <summary>The reason of a version whose instances are loaded and running their warmup samples.</summary>
    public const string WarmingUpReason = "warming up";

    /// <summary>Moves a <see cref="Loading"/> placeholder on to its next phase (its reason).</summary>
    internal void SetLoadingPhase(string reason)
    {
        if (State == ModelState.Loading)
        {
            Reason = reason;
        }
    }

    /// <summary>Requests holding this version (queued, running or streaming); 0 when it is not serving.</summary>
    public int InFlight => State == ModelState.Ready ? Math.Max(0, Volatile.Read(ref _references) - 1) : 0;

    /// <summary>How long loading took (all instances, configuration included; warmup not included).</summary>
    public TimeSpan LoadDuration { get; internal set; }

    /// <summary>How long the warmup samples ran on the instances (zero without <c>model_warmup</c>).</summary>
    public TimeSpan WarmupDuration { get; internal set; }

    /// <summary>Requests waiting in this version's queue (for a generative model, waiting for a running slot).</summary>
    public int QueueLength => _runner?.QueueLength ?? 0;

    /// <summary>What runs this version's work while it serves; null while loading or after a failed load.</summary>
    internal IModelRunner? Runner => _runner;

    internal bool TryAcquire([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IModelRunner? runner)
    {
        runner = _runner;
        if (runner is null)
        {
            return false;
        }
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current <= 0 || State != ModelState.Ready)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _runner?.Dispose();
        }
    }

    /// <summary>Stops new requests; the engine is released once the requests in flight finish.</summary>
    internal void Retire(string reason)
    {
        var wasReady = State == ModelState.Ready;
        State = ModelState.Unavailable;
        Reason = reason;
        if (wasReady)
        {
            Release();
        }
    }
}

/// <summary>A request's hold on a ready model version; dispose it when the request is done.</summary>
public readonly struct ModelLease : IDisposable
{
    internal ModelLease(ModelVersion version, IModelRunner runner)
    {
        Version = version;
        Runner = runner;
    }

    /// <summary>The version serving the request.</summary>
    public ModelVersion Version { get; }

    /// <summary>The version's runner (its queue and engine instances).</summary>
    internal IModelRunner Runner { get; }

    /// <summary>The version's configuration.</summary>
    public ModelConfig Config => Version.Config!;

    /// <inheritdoc />
    public void Dispose() => Version?.Release();
}
