using System.Runtime.InteropServices;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Backends.TorchSharp;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Backends;

/// <summary>
/// The engine seam as both engines implement it: tensors in, tensors out, with no request; outputs the engine allocates
/// or outputs bound to the caller's memory (filled in place, as a decode step will bind its logits and caches); one run
/// reused across executions; and nothing left behind when the engine refuses the inputs.
/// </summary>
public sealed class EngineSeamTests
{
    private static readonly int[] Counting = Enumerable.Range(0, 16).ToArray();
    private static readonly int[] Ones = Enumerable.Repeat(1, 16).ToArray();

    private static IBackendModel LoadSimple() => new OnnxRuntimeBackend().Load(new BackendLoadRequest(
        "simple", 1, Path.Combine(Paths.SampleModels, "simple", "1", "model.onnx"), "cpu", false, new Dictionary<string, string>()));

    private static Tensor Int32(string name, int[] values) =>
        new(name, DataType.Int32, [1, values.Length], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan())));

    [Fact]
    public void Onnx_runtime_allocates_the_outputs_it_is_asked_for_in_order()
    {
        using var model = LoadSimple();
        using var run = new EngineRun();
        using var a = Int32("INPUT0", Counting);
        using var b = Int32("INPUT1", Ones);
        run.Inputs.AddRange([a, b]);
        run.AddOutput("OUTPUT1");
        run.AddOutput("OUTPUT0");
        var timings = default(ExecutionTimings);
        model.Execute(run, ref timings);

        using var difference = run.Outputs[0].TakeResult();
        using var sum = run.Outputs[1].TakeResult();
        Assert.Equal("OUTPUT1", difference.Name);
        Assert.Equal(Counting.Select(v => v - 1), difference.Elements<int>().ToArray());
        Assert.Equal(Counting.Select(v => v + 1), sum.Elements<int>().ToArray());
        Assert.True(timings.InferTicks > 0);
        // The engine never disposes what it was given.
        Assert.Equal(Counting, a.Elements<int>().ToArray());
    }

    [Fact]
    public void Onnx_runtime_fills_outputs_bound_to_the_callers_memory_and_a_run_is_reused()
    {
        using var model = LoadSimple();
        using var run = new EngineRun();
        using var into = new Tensor("OUTPUT0", DataType.Int32, [1, 16], TensorBuffer.Rent(16 * sizeof(int)));
        var bound = new EngineOutput("OUTPUT0", into);
        for (var step = 0; step < 3; step++)
        {
            using var a = Int32("INPUT0", Counting);
            using var b = Int32("INPUT1", Enumerable.Repeat(step * 10, 16).ToArray());
            run.Clear();
            run.Inputs.AddRange([a, b]);
            run.Outputs.Add(bound);
            run.AddOutput("OUTPUT1");
            var timings = default(ExecutionTimings);
            model.Execute(run, ref timings);

            Assert.Same(into, bound.TakeResult());
            Assert.Equal(Counting.Select(v => v + (step * 10)), into.Elements<int>().ToArray());
            using var difference = run.Outputs[1].TakeResult();
            Assert.Equal(Counting.Select(v => v - (step * 10)), difference.Elements<int>().ToArray());
        }
    }

    [Fact]
    public void Onnx_runtime_leaves_no_result_when_it_refuses_the_inputs()
    {
        using var model = LoadSimple();
        using var run = new EngineRun();
        using var a = Int32("INPUT0", Counting);
        using var b = new Tensor("INPUT1", DataType.Int32, [1, 8], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(Ones.AsSpan(0, 8))));
        run.Inputs.AddRange([a, b]);
        run.AddOutput("OUTPUT0");
        var timings = default(ExecutionTimings);
        var error = Assert.Throws<InferenceException>(() => model.Execute(run, ref timings));
        Assert.Equal(InferenceErrorKind.InvalidArgument, error.Kind);
        Assert.Null(run.Outputs[0].Result);
    }

    [Fact]
    public void Libtorch_fills_outputs_bound_to_the_callers_memory()
    {
        // linrelu of ../shared (10 inputs, 6 outputs) and its expected values for an input of ones.
        float[] expected = [0.313458264f, 0, 0.9996568f, 0, 0, 0];
        var directory = Paths.NewTempDirectory("seam-torch");
        TorchScriptRepository.Add(directory, "linrelu", "linrelu.script.dat", "");
        using var model = new TorchSharpBackend().Load(new BackendLoadRequest(
            "linrelu", 1, Path.Combine(directory, "linrelu", "1", "model.pt"), "cpu", false, new Dictionary<string, string>())
        {
            DeclaredInputs = [new TensorConfig("x", DataType.Fp32, [10])],
            DeclaredOutputs = [new TensorConfig("y", DataType.Fp32, [6])],
        });
        using var run = new EngineRun();
        using var x = new Tensor("x", DataType.Fp32, [10], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(Enumerable.Repeat(1f, 10).ToArray().AsSpan())));
        using var into = new Tensor("y", DataType.Fp32, [6], TensorBuffer.Rent(6 * sizeof(float)));
        run.Inputs.Add(x);
        run.Outputs.Add(new EngineOutput("y", into));
        var timings = default(ExecutionTimings);
        model.Execute(run, ref timings);

        Assert.Same(into, run.Outputs[0].TakeResult());
        var actual = into.Elements<float>().ToArray();
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"y[{i}] = {actual[i]}, expected {expected[i]}");
        }

        // Memory of the wrong shape is the caller's bug, reported as the engine's failure, and no result is kept.
        using var wrong = new Tensor("y", DataType.Fp32, [5], TensorBuffer.Rent(5 * sizeof(float)));
        run.Outputs.Clear();
        run.Outputs.Add(new EngineOutput("y", wrong));
        var error = Assert.Throws<InferenceException>(() => model.Execute(run, ref timings));
        Assert.Equal(InferenceErrorKind.Internal, error.Kind);
        Assert.Null(run.Outputs[0].Result);
    }
}
