using System.Collections.Concurrent;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>What a <see cref="GateBackend"/> model saw: each execution's rows, shape and input values, and how many ran at once.</summary>
public sealed class GateState
{
    public ManualResetEventSlim Open { get; } = new(initialState: true);

    public ConcurrentQueue<(long Rows, long[] Shape, float[] Values)> Executions { get; } = new();

    /// <summary>When set, every execution fails with this message (an engine error), after it is recorded.</summary>
    public string? FailWith { get; set; }

    private int _disposed;

    /// <summary>Instances of the model released so far.</summary>
    public int Disposed => Volatile.Read(ref _disposed);

    internal void InstanceDisposed() => Interlocked.Increment(ref _disposed);

    private int _running;
    private int _maxRunning;

    public int MaxConcurrent => Volatile.Read(ref _maxRunning);

    internal void Enter()
    {
        var now = Interlocked.Increment(ref _running);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, now, seen) != seen)
        {
        }
    }

    internal void Leave() => Interlocked.Decrement(ref _running);

    /// <summary>Waits (bounded) until the engine has started <paramref name="count"/> executions.</summary>
    public async Task WaitForExecutionsAsync(int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Executions.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {Executions.Count} of {count} executions started");
            await Task.Delay(5);
        }
    }
}

/// <summary>
/// A test engine ("backend: test_gate"): FP32 input "x" [-1, -1] copied to output "y", recording every execution and
/// optionally holding it until the test opens the gate — so queue behaviour can be observed without timing.
/// </summary>
public sealed class GateBackend : IModelBackend
{
    public static ConcurrentDictionary<string, GateState> States { get; } = new();

    public string Name => "test_gate";

    public string Platform => "test_gate";

    public string DefaultModelFilename => "model.gate";

    public IBackendModel Load(BackendLoadRequest request) => new GateModel(States.GetOrAdd(request.ModelName, _ => new GateState()));

    /// <summary>Writes a model directory for this backend with the given config lines (after "backend: test_gate").</summary>
    public static void WriteModel(string repository, string name, string configYaml)
    {
        var dir = Path.Combine(repository, name);
        Directory.CreateDirectory(Path.Combine(dir, "1"));
        File.WriteAllText(Path.Combine(dir, "1", "model.gate"), "");
        File.WriteAllText(Path.Combine(dir, "config.yaml"), "backend: test_gate\n" + configYaml);
        States[name] = new GateState();
    }

    private sealed class GateModel(GateState state) : IBackendModel
    {
        public ModelSignature Signature { get; } = new(
            [new TensorConfig("x", DataType.Fp32, [-1, -1])],
            [new TensorConfig("y", DataType.Fp32, [-1, -1])]);

        public string ExecutionProvider => "test";

        public void Execute(EngineRun run, ref ExecutionTimings timings)
        {
            state.Enter();
            try
            {
                var x = run.Inputs[0];
                state.Executions.Enqueue((x.Shape[0], x.Shape, x.Elements<float>().ToArray()));
                if (!state.Open.Wait(TimeSpan.FromSeconds(30)))
                {
                    throw new InvalidOperationException("the test never opened the gate");
                }
                if (state.FailWith is { } failure)
                {
                    throw new InvalidOperationException(failure);
                }
                run.Outputs[0].Result = new Tensor("y", DataType.Fp32, (long[])x.Shape.Clone(), TensorBuffer.CopyOf(x.Data.Span));
            }
            finally
            {
                state.Leave();
            }
        }

        public void Dispose() => state.InstanceDisposed();
    }
}
