using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// Adds nodes to an <see cref="OnnxGraphBuilder"/> with generated value names (<c>/scope/Op_n</c>) and shared
/// constants, so a graph reads as a sequence of operations.
/// </summary>
internal sealed class GraphEmitter(OnnxGraphBuilder builder)
{
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private int _counter;

    /// <summary>The builder the nodes go to.</summary>
    public OnnxGraphBuilder Builder { get; } = builder;

    /// <summary>Prefix of generated value names, e.g. <c>/model/layers.0/self_attn</c>.</summary>
    public string Scope { get; set; } = "";

    /// <summary>Adds a one-output node and returns its output's name (<paramref name="output"/>, or a generated one).</summary>
    public string Op(string opType, string[] inputs, string? output = null, params NodeAttribute[] attributes)
    {
        output ??= NewName(opType) + "_output_0";
        Builder.Node(opType, inputs, [output], attributes);
        return output;
    }

    /// <summary>Adds a node of <paramref name="outputCount"/> outputs and returns their generated names.</summary>
    public string[] OpMany(string opType, string[] inputs, int outputCount, params NodeAttribute[] attributes)
    {
        string baseName = NewName(opType);
        var outputs = Enumerable.Range(0, outputCount).Select(i => string.Create(CultureInfo.InvariantCulture, $"{baseName}_output_{i}")).ToArray();
        Builder.Node(opType, inputs, outputs, attributes);
        return outputs;
    }

    /// <summary>An INT64 constant of shape <c>[values.Length]</c>, added once per distinct value list.</summary>
    public string Int64s(params long[] values) =>
        Constant("const_int64s_" + string.Join("_", values.Select(v => v.ToString(CultureInfo.InvariantCulture))).Replace('-', 'm'),
            name => Builder.Initializer(name, [values.Length], values));

    /// <summary>An INT64 scalar constant (shape <c>[]</c>).</summary>
    public string Int64Scalar(long value) =>
        Constant("const_int64_" + value.ToString(CultureInfo.InvariantCulture).Replace('-', 'm'),
            name => Builder.Initializer(name, [], [value]));

    /// <summary>A FLOAT scalar constant (shape <c>[]</c>).</summary>
    public string FloatScalar(float value) =>
        Constant("const_float_" + BitConverter.SingleToInt32Bits(value).ToString("x8", CultureInfo.InvariantCulture),
            name => Builder.Initializer(name, [], [value]));

    private string Constant(string name, Action<string> add)
    {
        if (!_constants.TryGetValue(name, out string? existing))
        {
            add(name);
            _constants.Add(name, name);
            existing = name;
        }

        return existing;
    }

    private string NewName(string opType) =>
        string.Create(CultureInfo.InvariantCulture, $"{Scope}/{opType}_{_counter++}");
}
