using System.Globalization;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// Adds nodes to an <see cref="OnnxGraphBuilder"/> with generated value names (<c>/scope/Op_n</c>) and shared
/// constants, so a graph reads as a sequence of operations.
/// </summary>
internal sealed class GraphEmitter
{
    private readonly OnnxGraphBuilder _constantsBuilder;
    private readonly Dictionary<string, string> _constants;
    private readonly Counter _counter;
    private readonly string _graphPath;

    /// <summary>An emitter of nodes and constants into the model of <paramref name="builder"/>.</summary>
    public GraphEmitter(OnnxGraphBuilder builder)
        : this(builder, builder, new Dictionary<string, string>(StringComparer.Ordinal), new Counter(), "")
    {
    }

    private GraphEmitter(OnnxGraphBuilder builder, OnnxGraphBuilder constantsBuilder, Dictionary<string, string> constants, Counter counter, string graphPath)
    {
        Builder = builder;
        _constantsBuilder = constantsBuilder;
        _constants = constants;
        _counter = counter;
        _graphPath = graphPath;
    }

    /// <summary>The builder the nodes go to.</summary>
    public OnnxGraphBuilder Builder { get; }

    /// <summary>
    /// An emitter into a new subgraph <paramref name="graphName"/> of <see cref="Builder"/> (e.g. an <c>If</c> branch):
    /// its nodes go to the subgraph, its constants to this emitter's model graph (shared, seen from the subgraph as
    /// outer-scope values), and its generated names start with <c>/graphName</c> and continue this emitter's numbering,
    /// so none repeats in the model.
    /// </summary>
    public GraphEmitter Subgraph(string graphName) =>
        new(Builder.Subgraph(graphName), _constantsBuilder, _constants, _counter, $"{_graphPath}/{graphName}");

    /// <summary>Prefix of generated value names, e.g. <c>/model/layers.0/self_attn</c> (after the subgraph's name in a subgraph).</summary>
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
            name => _constantsBuilder.Initializer(name, [values.Length], values));

    /// <summary>An INT64 scalar constant (shape <c>[]</c>).</summary>
    public string Int64Scalar(long value) =>
        Constant("const_int64_" + value.ToString(CultureInfo.InvariantCulture).Replace('-', 'm'),
            name => _constantsBuilder.Initializer(name, [], [value]));

    /// <summary>A FLOAT scalar constant (shape <c>[]</c>).</summary>
    public string FloatScalar(float value) =>
        Constant("const_float_" + BitConverter.SingleToInt32Bits(value).ToString("x8", CultureInfo.InvariantCulture),
            name => _constantsBuilder.Initializer(name, [], [value]));

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
        string.Create(CultureInfo.InvariantCulture, $"{_graphPath}{Scope}/{opType}_{_counter.Next()}");

    /// <summary>The running number of generated names, shared by a model's emitter and its subgraphs' emitters.</summary>
    private sealed class Counter
    {
        private int _value;

        public int Next() => _value++;
    }
}
