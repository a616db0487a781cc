using InferenceServer.Inference;
using InferenceServer.Repository;

namespace InferenceServer.Backends;

/// <summary>A model's inputs and outputs as the model itself declares them (full dimensions, -1 where variable).</summary>
public sealed record ModelSignature(IReadOnlyList<TensorConfig> Inputs, IReadOnlyList<TensorConfig> Outputs);

/// <summary>What a backend needs to load one version of a model.</summary>
public sealed record BackendLoadRequest(
    string ModelName,
    long Version,
    string ModelPath,
    string Device,
    bool AllowCpuFallback,
    IReadOnlyDictionary<string, string> Parameters)
{
    /// <summary>
    /// The inputs the configuration declares, with full dimensions (a leading -1 when the model batches). Backends
    /// whose format carries no signature (TorchScript) take the model's inputs from here.
    /// </summary>
    public IReadOnlyList<TensorConfig> DeclaredInputs { get; init; } = [];

    /// <summary>The outputs the configuration declares, as <see cref="DeclaredInputs"/>.</summary>
    public IReadOnlyList<TensorConfig> DeclaredOutputs { get; init; } = [];
}

/// <summary>Time spent in each phase of one execution, in <see cref="System.Diagnostics.Stopwatch"/> ticks.</summary>
public struct ExecutionTimings
{
    /// <summary>Preparing the inputs for the engine.</summary>
    public long InputTicks;

    /// <summary>The engine's run.</summary>
    public long InferTicks;

    /// <summary>Copying the outputs out of the engine.</summary>
    public long OutputTicks;
}

/// <summary>An engine that can load models of one format (the narrow interface every backend implements).</summary>
public interface IModelBackend
{
    /// <summary>The backend's name in model configuration ("onnxruntime").</summary>
    string Name { get; }

    /// <summary>Triton's platform string for models of this backend ("onnxruntime_onnx").</summary>
    string Platform { get; }

    /// <summary>The model file name looked for in a version directory when the configuration names none.</summary>
    string DefaultModelFilename { get; }

    /// <summary>Loads one version; throws <see cref="ModelLoadException"/> with a readable reason when it cannot.</summary>
    IBackendModel Load(BackendLoadRequest request);
}

/// <summary>One loaded model version, ready to execute requests. Implementations are thread-safe.</summary>
public interface IBackendModel : IDisposable
{
    /// <summary>The inputs and outputs the model declares.</summary>
    ModelSignature Signature { get; }

    /// <summary>The execution provider in use ("CPUExecutionProvider", "CUDAExecutionProvider").</summary>
    string ExecutionProvider { get; }

    /// <summary>Runs the request's inputs (already validated against the configuration) and appends <paramref name="outputs"/> to the response.</summary>
    void Execute(InferenceRequest request, IReadOnlyList<string> outputs, InferenceResponse response, ref ExecutionTimings timings);
}

/// <summary>A model version could not be loaded; the message is its reason in the repository index.</summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);
