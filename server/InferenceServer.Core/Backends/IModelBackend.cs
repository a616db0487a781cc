using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Backends;

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

/// <summary>
/// One loaded model version: the engine seam. It executes input tensors into output tensors and knows nothing of
/// requests, responses or model names. Implementations are thread-safe across different <see cref="EngineRun"/>s.
/// </summary>
public interface IBackendModel : IDisposable
{
    /// <summary>The inputs and outputs the model declares.</summary>
    ModelSignature Signature { get; }

    /// <summary>The execution provider in use ("CPUExecutionProvider", "CUDAExecutionProvider").</summary>
    string ExecutionProvider { get; }

    /// <summary>
    /// Runs <see cref="EngineRun.Inputs"/> (already validated against the configuration) and sets the
    /// <see cref="EngineOutput.Result"/> of every <see cref="EngineRun.Outputs"/> entry: the tensor the caller bound
    /// (<see cref="EngineOutput.Into"/>), filled, or a pooled tensor the engine allocated. Throws
    /// <see cref="Inference.InferenceException"/>: InvalidArgument for inputs the engine refuses, Internal when it fails.
    /// </summary>
    void Execute(EngineRun run, ref ExecutionTimings timings);
}

/// <summary>An output an engine run is asked for.</summary>
public sealed class EngineOutput
{
    /// <summary>Asks for output <paramref name="name"/>, into <paramref name="into"/> when the caller has bound memory for it.</summary>
    public EngineOutput(string name, Tensor? into = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        Name = name;
        Into = into;
    }

    /// <summary>The model's output name.</summary>
    public string Name { get; }

    /// <summary>
    /// Memory the caller bound for this output before the run (pooled host memory it owns, of the output's exact shape
    /// and datatype), which the engine fills in place; null for the engine to allocate. A caller that runs the same
    /// shapes again (a decode step) binds once and reuses it.
    /// </summary>
    public Tensor? Into { get; }

    /// <summary>The output after the run: <see cref="Into"/>, or a tensor the engine allocated, which the caller then owns.</summary>
    public Tensor? Result { get; set; }

    /// <summary>Takes <see cref="Result"/> (and its ownership) and clears it, so the output can be asked for again.</summary>
    public Tensor TakeResult()
    {
        var result = Result ?? throw new InvalidOperationException($"output '{Name}' has not been produced");
        Result = null;
        return result;
    }
}

/// <summary>
/// The tensors of an engine run, and what the engine keeps for its caller between runs. A caller that runs an engine
/// repeatedly (an instance thread, a decoder) keeps one and refills it, so a run allocates nothing for it.
/// </summary>
public sealed class EngineRun : IDisposable
{
    /// <summary>The input tensors, borrowed: the engine reads them and never disposes them.</summary>
    public List<Tensor> Inputs { get; } = [];

    /// <summary>The outputs wanted, in order.</summary>
    public List<EngineOutput> Outputs { get; } = [];

    /// <summary>
    /// State the engine keeps for this caller across runs (bindings, device buffers, per-sequence caches); the engine
    /// creates and reads it, the caller only carries it and disposes it with the run.
    /// </summary>
    public IDisposable? State { get; set; }

    /// <summary>Asks for an output the engine allocates.</summary>
    public void AddOutput(string name) => Outputs.Add(new EngineOutput(name));

    /// <summary>
    /// Asks for exactly the outputs named, in order, for the engine to allocate. When the previous run asked for the same
    /// ones (an instance thread's batches usually do), their entries are kept, so refilling the run allocates nothing.
    /// </summary>
    public void AskFor(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (Outputs.Count == names.Count)
        {
            var same = true;
            for (var i = 0; i < names.Count && same; i++)
            {
                same = Outputs[i].Name == names[i] && Outputs[i].Into is null && Outputs[i].Result is null;
            }
            if (same)
            {
                return;
            }
        }
        Outputs.Clear();
        foreach (var name in names)
        {
            Outputs.Add(new EngineOutput(name));
        }
    }

    /// <summary>Forgets the inputs and outputs (disposing neither), keeping <see cref="State"/>.</summary>
    public void Clear()
    {
        Inputs.Clear();
        Outputs.Clear();
    }

    /// <summary>
    /// Drops every output result still held, disposing those the engine allocated (not memory the caller bound): what
    /// an engine does when a run fails part-way, so that no output keeps a result.
    /// </summary>
    public void DiscardResults()
    {
        foreach (var output in Outputs)
        {
            if (output.Result is { } result && !ReferenceEquals(result, output.Into))
            {
                result.Dispose();
            }
            output.Result = null;
        }
    }

    /// <summary>Disposes the engine's state and every output result still held.</summary>
    public void Dispose()
    {
        DiscardResults();
        State?.Dispose();
        State = null;
    }
}

/// <summary>A model version could not be loaded; the message is its reason in the repository index.</summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);
