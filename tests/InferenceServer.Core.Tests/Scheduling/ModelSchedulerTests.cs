using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Scheduling;
using InferenceServer.Statistics;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Scheduling;

/// <summary>
/// The dynamic batcher over a fake engine that doubles its input: a lone request's tensors reach the engine as they
/// are; requests that queue up while the instance is busy run as one gathered batch and each gets its rows back; an
/// engine failure fails every request of the batch as Internal; the runner counts what waits and what executes.
/// </summary>
public sealed class ModelSchedulerTests
{
    private static ModelConfig Config() => new()
    {
        Name = "double",
        MaxBatchSize = 8,
        Inputs = [new TensorConfig("x", DataType.Fp32, [-1, 2])],
        Outputs = [new TensorConfig("y", DataType.Fp32, [-1, 2])],
        DynamicBatching = new DynamicBatchingConfig(0, []),
    };

    private static InferenceRequest Request(string id, params float[] values)
    {
        var request = new InferenceRequest("double") { Id = id };
        request.AddInput(new Tensor("x", DataType.Fp32, [values.Length / 2, 2], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan()))));
        return request;
    }

    [Fact]
    public async Task A_lone_request_reaches_the_engine_as_it_is()
    {
        var engine = new DoublingModel();
        using var scheduler = new ModelScheduler(Config(), 1, [engine], new ModelStatistics());
        using var request = Request("a", 1, 2);
        using var response = await scheduler.InferAsync(request, 1, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Same(request.Inputs[0], Assert.Single(engine.Runs).Input);
        Assert.Equal("a", response.Id);
        Assert.Equal([2f, 4], response.Outputs.Single().Elements<float>().ToArray());
    }

    [Fact]
    public async Task Requests_queued_behind_a_busy_instance_run_as_one_batch_and_get_their_rows()
    {
        var engine = new DoublingModel();
        engine.Gate.Reset();
        var statistics = new ModelStatistics();
        using var scheduler = new ModelScheduler(Config(), 1, [engine], statistics);
        using var first = Request("first", 1, 1);
        var running = scheduler.InferAsync(first, 1, CancellationToken.None);
        await engine.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, scheduler.Executing);

        using var a = Request("a", 1, 2);
        using var b = Request("b", 3, 4, 5, 6);
        var ta = scheduler.InferAsync(a, 1, CancellationToken.None);
        var tb = scheduler.InferAsync(b, 2, CancellationToken.None);
        Assert.Equal(2, scheduler.QueueLength);
        engine.Gate.Set();

        using var ra = await ta.WaitAsync(TimeSpan.FromSeconds(30));
        using var rb = await tb.WaitAsync(TimeSpan.FromSeconds(30));
        (await running).Dispose();
        var batched = engine.Runs.Last();
        Assert.Equal([3L, 2], batched.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], batched.Values);
        Assert.Equal([2f, 4], ra.Outputs.Single().Elements<float>().ToArray());
        Assert.Equal([2L, 2], rb.Outputs.Single().Shape);
        Assert.Equal([6f, 8, 10, 12], rb.Outputs.Single().Elements<float>().ToArray());
        Assert.Equal(0, scheduler.QueueLength);
    }

    [Fact]
    public async Task An_engine_failure_fails_every_request_of_the_batch_as_internal()
    {
        var engine = new DoublingModel { Fail = true };
        using var scheduler = new ModelScheduler(Config(), 1, [engine], new ModelStatistics());
        using var request = Request("a", 1, 2);
        var error = await Assert.ThrowsAsync<InferenceException>(() => scheduler.InferAsync(request, 1, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(InferenceErrorKind.Internal, error.Kind);
        Assert.Contains("engine broke", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tensor_model_refuses_a_generation()
    {
        using var scheduler = new ModelScheduler(Config(), 1, [new DoublingModel()], new ModelStatistics());
        var error = Assert.Throws<InferenceException>(() => ((IModelRunner)scheduler).Generate([], new InferenceServer.Generation.GenerationRequest { Prompt = "x" }, 1, null, new NoLease(), CancellationToken.None));
        Assert.Equal(InferenceErrorKind.InvalidArgument, error.Kind);
    }

    private sealed class NoLease : IDisposable
    {
        public void Dispose()
        {
        }
    }

    /// <summary>y = 2x; records what each run got; holds on <see cref="Gate"/> while it is reset.</summary>
    private sealed class DoublingModel : IBackendModel
    {
        public ManualResetEventSlim Gate { get; } = new(initialState: true);

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentQueue<(Tensor Input, long[] Shape, float[] Values)> Runs { get; } = new();

        public bool Fail { get; init; }

        public ModelSignature Signature { get; } = new([new TensorConfig("x", DataType.Fp32, [-1, 2])], [new TensorConfig("y", DataType.Fp32, [-1, 2])]);

        public string ExecutionProvider => "test";

        public void Execute(EngineRun run, ref ExecutionTimings timings)
        {
            var x = run.Inputs.Single();
            Runs.Enqueue((x, (long[])x.Shape.Clone(), x.Elements<float>().ToArray()));
            Entered.TrySetResult();
            if (!Gate.Wait(TimeSpan.FromSeconds(30)))
            {
                throw new InvalidOperationException("the test never opened the gate");
            }
            if (Fail)
            {
                throw new InvalidOperationException("engine broke");
            }
            var doubled = x.Elements<float>().ToArray().Select(v => v * 2).ToArray();
            run.Outputs.Single().Result = new Tensor("y", DataType.Fp32, (long[])x.Shape.Clone(), TensorBuffer.CopyOf(MemoryMarshal.AsBytes(doubled.AsSpan())));
        }

        public void Dispose() => Gate.Dispose();
    }
}
