using System.Text;
using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// A named node attribute for <see cref="OnnxGraphBuilder.Node"/>, created with one of the
/// factory methods, e.g. <c>NodeAttribute.Int("axis", 1)</c>.
/// </summary>
public sealed class NodeAttribute
{
    private readonly AttributeProto _proto;

    private NodeAttribute(AttributeProto proto) => _proto = proto;

    /// <summary>The attribute name.</summary>
    public string Name => _proto.Name;

    /// <summary>An INT attribute.</summary>
    public static NodeAttribute Int(string name, long value) =>
        Make(name, AttributeProto.Types.AttributeType.Int, a => a.I = value);

    /// <summary>A FLOAT attribute.</summary>
    public static NodeAttribute Float(string name, float value) =>
        Make(name, AttributeProto.Types.AttributeType.Float, a => a.F = value);

    /// <summary>A STRING attribute, UTF-8 encoded.</summary>
    public static NodeAttribute String(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Make(name, AttributeProto.Types.AttributeType.String, a => a.S = ByteString.CopyFromUtf8(value));
    }

    /// <summary>An INTS attribute.</summary>
    public static NodeAttribute Ints(string name, params long[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Make(name, AttributeProto.Types.AttributeType.Ints, a => a.Ints.AddRange(values));
    }

    /// <summary>A FLOATS attribute.</summary>
    public static NodeAttribute Floats(string name, params float[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Make(name, AttributeProto.Types.AttributeType.Floats, a => a.Floats.AddRange(values));
    }

    /// <summary>A STRINGS attribute, each UTF-8 encoded.</summary>
    public static NodeAttribute Strings(string name, params string[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Make(name, AttributeProto.Types.AttributeType.Strings,
            a => a.Strings.AddRange(values.Select(v => ByteString.CopyFrom(Encoding.UTF8.GetBytes(v)))));
    }

    /// <summary>A TENSOR attribute (e.g. the <c>value</c> of a <c>Constant</c> node).</summary>
    public static NodeAttribute Tensor(string name, OnnxTensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Make(name, AttributeProto.Types.AttributeType.Tensor, a => a.T = TensorProtoFile.ToProto(value));
    }

    /// <summary>
    /// A GRAPH attribute (e.g. the <c>then_branch</c> or <c>else_branch</c> of an <c>If</c> node): the subgraph as
    /// <paramref name="subgraph"/> holds it now, started with <see cref="OnnxGraphBuilder.Subgraph"/> of the builder
    /// the node goes to, and checked with that builder's model.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="subgraph"/> is a model's builder, not a subgraph's.</exception>
    public static NodeAttribute Graph(string name, OnnxGraphBuilder subgraph)
    {
        ArgumentNullException.ThrowIfNull(subgraph);
        if (!subgraph.IsSubgraph)
        {
            throw new ArgumentException("A graph attribute takes a subgraph started with OnnxGraphBuilder.Subgraph.", nameof(subgraph));
        }

        return Make(name, AttributeProto.Types.AttributeType.Graph, a => a.G = subgraph.ToGraphProto());
    }

    internal AttributeProto ToProto() => _proto.Clone();

    private static NodeAttribute Make(string name, AttributeProto.Types.AttributeType type, Action<AttributeProto> set)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var proto = new AttributeProto { Name = name, Type = type };
        set(proto);
        return new NodeAttribute(proto);
    }
}
