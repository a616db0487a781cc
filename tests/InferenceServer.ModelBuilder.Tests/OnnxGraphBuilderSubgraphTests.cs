using InferenceServer.ModelBuilder;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Tests.ModelBuilder;

/// <summary>
/// Subgraphs of <see cref="OnnxGraphBuilder"/> (<see cref="OnnxGraphBuilder.Subgraph"/>, <see cref="NodeAttribute.Graph"/>):
/// an <c>If</c> whose branches read outer-scope values runs in ONNX Runtime, and the model's check covers the subgraphs.
/// </summary>
public sealed class OnnxGraphBuilderSubgraphTests
{
    [Fact]
    public void If_node_with_branches_reading_outer_values_runs_in_onnx_runtime()
    {
        var model = new OnnxGraphBuilder("choose")
            .Input("x", TensorElementKind.Float, 3)
            .Input("flag", TensorElementKind.Bool, 1)
            .Initializer("two", [], [2f]);
        var then = model.Subgraph("doubled").Node("Mul", ["x", "two"], ["doubled_y"]).Output("doubled_y", TensorElementKind.Float, 3);
        var otherwise = model.Subgraph("negated").Node("Neg", ["x"], ["negated_y"]).Output("negated_y", TensorElementKind.Float, 3);
        byte[] bytes = model
            .Node("If", ["flag"], ["y"], NodeAttribute.Graph("then_branch", then), NodeAttribute.Graph("else_branch", otherwise))
            .Output("y", TensorElementKind.Float, 3)
            .ToModelBytes();

        using var session = new InferenceSession(bytes);
        float[] Run(bool flag)
        {
            using var x = OrtValue.CreateTensorValueFromMemory(new[] { 1f, -2f, 3f }, [3]);
            using var f = OrtValue.CreateTensorValueFromMemory(new[] { flag }, [1]);
            using var results = session.Run(new RunOptions(), ["x", "flag"], [x, f], ["y"]);
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }

        Assert.Equal([2f, -4f, 6f], Run(true));
        Assert.Equal([-1f, 2f, -3f], Run(false));
    }

    [Fact]
    public void Model_check_covers_subgraphs_scope_and_name_uniqueness()
    {
        // A branch may not read a value of the other branch, nor one defined after its node.
        var model = new OnnxGraphBuilder("bad").Input("x", TensorElementKind.Float, 1).Input("flag", TensorElementKind.Bool, 1);
        var first = model.Subgraph("first").Node("Neg", ["x"], ["a"]).Output("a", TensorElementKind.Float, 1);
        var second = model.Subgraph("second").Node("Neg", ["a"], ["b"]).Output("b", TensorElementKind.Float, 1);
        model.Node("If", ["flag"], ["y"], NodeAttribute.Graph("then_branch", first), NodeAttribute.Graph("else_branch", second)).Output("y", TensorElementKind.Float, 1);
        Assert.Contains("uses 'a' before it is defined", Assert.Throws<InvalidOperationException>(() => model.ToModelProto()).Message, StringComparison.Ordinal);

        // A subgraph may not define a name the model uses elsewhere (no shadowing).
        var shadowing = new OnnxGraphBuilder("shadow").Input("x", TensorElementKind.Float, 1).Input("flag", TensorElementKind.Bool, 1);
        var branch = shadowing.Subgraph("branch").Node("Neg", ["x"], ["x"]).Output("x", TensorElementKind.Float, 1);
        shadowing.Node("If", ["flag"], ["y"], NodeAttribute.Graph("then_branch", branch), NodeAttribute.Graph("else_branch", branch)).Output("y", TensorElementKind.Float, 1);
        Assert.Contains("'x' is defined twice", Assert.Throws<InvalidOperationException>(() => shadowing.ToModelProto()).Message, StringComparison.Ordinal);

        // A subgraph is not a model, and a model is not a graph attribute.
        Assert.Throws<InvalidOperationException>(() => first.ToModelProto());
        Assert.Throws<ArgumentException>(() => NodeAttribute.Graph("then_branch", new OnnxGraphBuilder("model")));
        Assert.True(first.IsSubgraph);
    }
}
