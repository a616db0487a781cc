using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.Perf;

/// <summary>
/// Rewrites <c>light_resnet50.onnx</c> (batch fixed at 1) into a copy with a symbolic batch dimension: graph inputs'
/// and outputs' dimension 0 become <c>dim_param "batch"</c>, the constant shape <c>[1, 2048]</c> of the final Reshape
/// becomes <c>[0, 2048]</c> (0 = keep the input's dimension), wherever it lives (an initializer or a Constant node's
/// <c>value</c> attribute), and intermediate <c>value_info</c> entries (which carry batch 1) are dropped so that
/// ONNX Runtime infers them again.
/// </summary>
internal static class Resnet50Batch
{
    /// <summary>Writes the rewritten model to <paramref name="destination"/>; returns a line saying what was changed.</summary>
    public static string Rewrite(string source, string destination)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(source));
        var graph = model.Graph;
        foreach (var value in graph.Input.Concat(graph.Output))
        {
            if (value.Type?.TensorType?.Shape is { Dim.Count: > 0 } shape)
            {
                shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
            }
        }
        var reshape = graph.Node.LastOrDefault(n => n.OpType == "Reshape")
            ?? throw new InvalidOperationException($"{source} has no Reshape node");
        var shapeName = reshape.Input[1];
        string where;
        if (graph.Initializer.FirstOrDefault(t => t.Name == shapeName) is { } initializer)
        {
            ZeroBatch(initializer, shapeName);
            where = $"initializer '{shapeName}'";
        }
        else if (graph.Node.FirstOrDefault(n => n.OpType == "Constant" && n.Output.Contains(shapeName)) is { } constant &&
                 constant.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } tensor)
        {
            ZeroBatch(tensor, shapeName);
            where = $"Constant node '{constant.Name}' (attribute value)";
        }
        else
        {
            throw new InvalidOperationException($"the shape '{shapeName}' of Reshape '{reshape.Name}' is neither an initializer nor a Constant node's value");
        }
        var dropped = graph.ValueInfo.Count;
        graph.ValueInfo.Clear();
        File.WriteAllBytes(destination, model.ToByteArray());
        return $"batch made symbolic; Reshape '{reshape.Name}' shape [1, 2048] -> [0, 2048] in {where}; {dropped} value_info entries dropped";
    }

    private static void ZeroBatch(TensorProto tensor, string name)
    {
        const int Int64 = 7;
        if (tensor.DataType != Int64)
        {
            throw new InvalidOperationException($"shape '{name}' has data type {tensor.DataType}, not INT64");
        }
        long[] values;
        if (tensor.Int64Data.Count > 0)
        {
            values = tensor.Int64Data.ToArray();
        }
        else
        {
            var raw = tensor.RawData.Span;
            values = new long[raw.Length / 8];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(raw[(i * 8)..]);
            }
        }
        if (values is not [1, 2048])
        {
            throw new InvalidOperationException($"shape '{name}' is [{string.Join(", ", values)}], not [1, 2048]");
        }
        values[0] = 0;
        if (tensor.Int64Data.Count > 0)
        {
            tensor.Int64Data.Clear();
            tensor.Int64Data.Add(values);
        }
        else
        {
            var raw = new byte[values.Length * 8];
            for (var i = 0; i < values.Length; i++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(raw.AsSpan(i * 8), values[i]);
            }
            tensor.RawData = ByteString.CopyFrom(raw);
        }
    }
}
