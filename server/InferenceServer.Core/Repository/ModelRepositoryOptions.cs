namespace InferenceServer.Repository;

/// <summary>How models are loaded and unloaded.</summary>
public enum ModelControlMode
{
    /// <summary>Every model in the repository is loaded at start-up; the load/unload API is refused.</summary>
    None,
    /// <summary>Only the start-up models named are loaded; clients load and unload through the API.</summary>
    Explicit,
}

/// <summary>Settings of the model repository (section "Repository" of the configuration).</summary>
public sealed class ModelRepositoryOptions
{
    /// <summary>The repository directory.</summary>
    public string Path { get; set; } = "models";

    /// <summary>none (load everything) or explicit (load through the API).</summary>
    public ModelControlMode ModelControlMode { get; set; } = ModelControlMode.None;

    /// <summary>In explicit mode, the models to load at start-up ("*" for all).</summary>
    public List<string> StartupModels { get; set; } = [];

    /// <summary>Ready only when every model that should be loaded is ready (Triton's --strict-readiness).</summary>
    public bool StrictReadiness { get; set; } = true;

    /// <summary>The device of models whose configuration names none ("cpu", "cuda:0").</summary>
    public string DefaultDevice { get; set; } = "cpu";

    /// <summary>max_batch_size given to a model whose configuration omits it and whose inputs and outputs all have a variable leading dimension.</summary>
    public int DefaultMaxBatchSize { get; set; } = 8;

    /// <summary>max_queue_size of models whose configuration sets none: the queue is always bounded.</summary>
    public int DefaultMaxQueueSize { get; set; } = 1024;

    /// <summary>How many models load at once at start-up.</summary>
    public int LoadParallelism { get; set; } = Environment.ProcessorCount;
}
