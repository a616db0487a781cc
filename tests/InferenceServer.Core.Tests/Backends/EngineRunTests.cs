using InferenceServer.Backends;

namespace InferenceServer.Tests.Core.Backends;

/// <summary>An instance thread refills one run per batch: asking for the same outputs again allocates nothing.</summary>
public sealed class EngineRunTests
{
    [Fact]
    public void Asking_for_the_same_outputs_keeps_their_entries()
    {
        using var run = new EngineRun();
        run.AskFor(["a", "b"]);
        var first = run.Outputs.ToArray();
        run.AskFor(["a", "b"]);
        Assert.Equal(first, run.Outputs);
        Assert.Same(first[0], run.Outputs[0]);
    }

    [Fact]
    public void Other_outputs_or_a_result_still_held_make_new_entries()
    {
        using var run = new EngineRun();
        run.AskFor(["a", "b"]);
        var first = run.Outputs.ToArray();
        run.AskFor(["b", "a"]);
        Assert.Equal(["b", "a"], run.Outputs.Select(o => o.Name));
        Assert.DoesNotContain(run.Outputs, o => first.Contains(o));

        var held = run.Outputs.ToArray();
        using var tensor = new InferenceServer.Tensors.Tensor("b", InferenceServer.Tensors.DataType.Fp32, [1], InferenceServer.Tensors.TensorBuffer.CopyOf(new byte[4]));
        held[0].Result = tensor;
        run.AskFor(["b", "a"]);
        Assert.NotSame(held[0], run.Outputs[0]);
        Assert.Null(run.Outputs[0].Result);
        held[0].Result = null;
    }
}
