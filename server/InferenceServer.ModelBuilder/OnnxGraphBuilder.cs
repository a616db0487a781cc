using System.Globalization;
using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// Fluent builder of a single-graph ONNX model.
/// </summary>
/// <example>
/// <code>
/// byte[] model = new OnnxGraphBuilder("add")
///     .Input("a", TensorElementKind.Float, "batch", 4)
///     .Input("b", TensorElementKind.Float, "batch", 4)
///     .Node("Add", ["a", "b"], ["sum"])
///     .Output("sum", TensorElementKind.Float, "batch", 4)
///     .ToModelBytes();
/// </code>
/// </example>
/// <remarks>
/// Nodes must be added in topological order. The serialized bytes depend only on the calls
/// made, so the same calls always give the same bytes.
/// </remarks>
public sealed class OnnxGraphBuilder
{
    /// <summary>The <c>producer_name</c> written into every model.</summary>
    public const string ProducerName = "InferenceServer.ModelBuilder";

    /// <summary>The <c>producer_version</c> written into every model.</summary>
    public const string ProducerVersion = "1.0";

    private readonly GraphProto _graph;
    private readonly SortedDictionary<string, long> _extraOpsets = new(StringComparer.Ordinal);
    private readonly List<StringStringEntryProto> _metadata = [];
    private string _docString = "";
    private long? _irVersion;
    private readonly Dictionary<string, int> _nodeNameCounts;

    /// <summary>Starts a model whose graph is named <paramref name="graphName"/>.</summary>
    /// <param name="graphName">Graph name.</param>
    /// <param name="opsetVersion">Version of the default (<c>ai.onnx</c>) operator set.</param>
    /// <exception cref="ArgumentOutOfRangeException">The opset version is below 1.</exception>
    public OnnxGraphBuilder(string graphName, int opsetVersion = 17)
    {
        ArgumentException.ThrowIfNullOrEmpty(graphName);
        ArgumentOutOfRangeException.ThrowIfLessThan(opsetVersion, 1);
        _graph = new GraphProto { Name = graphName };
        OpsetVersion = opsetVersion;
        _nodeNameCounts = new(StringComparer.Ordinal);
    }

    private OnnxGraphBuilder(string graphName, OnnxGraphBuilder parent)
    {
        ArgumentException.ThrowIfNullOrEmpty(graphName);
        _graph = new GraphProto { Name = graphName };
        OpsetVersion = parent.OpsetVersion;
        IsSubgraph = true;
        _nodeNameCounts = parent._nodeNameCounts;
    }

    /// <summary>Version of the default operator set.</summary>
    public int OpsetVersion { get; }

    /// <summary>Whether this builder makes a subgraph (see <see cref="Subgraph"/>) rather than a model.</summary>
    public bool IsSubgraph { get; }

    /// <summary>
    /// The IR version written: the one set with <see cref="WithIrVersion"/>, otherwise 8, or the
    /// lowest IR version that supports the opset for opsets above 18 (19–20: 9, 21–22: 10, later: 11).
    /// </summary>
    public long IrVersion => _irVersion ?? OpsetVersion switch
    {
        <= 18 => 8,
        <= 20 => 9,
        <= 22 => 10,
        _ => 11,
    };

    /// <summary>Adds a graph input. A null <paramref name="dims"/> array means unknown rank.</summary>
    /// <param name="name">Input name.</param>
    /// <param name="type">Element type.</param>
    /// <param name="dims">Dimensions: numbers are fixed (negative = unknown), strings symbolic (e.g. <c>"batch"</c>).</param>
    public OnnxGraphBuilder Input(string name, TensorElementKind type, params TensorDim[]? dims)
    {
        _graph.Input.Add(MakeValueInfo(name, type, dims));
        return this;
    }

    /// <summary>Adds a graph output. A null <paramref name="dims"/> array means unknown rank.</summary>
    /// <param name="name">Output name; must be produced by a node or be an input or initializer.</param>
    /// <param name="type">Element type.</param>
    /// <param name="dims">Dimensions: numbers are fixed (negative = unknown), strings symbolic (e.g. <c>"batch"</c>).</param>
    public OnnxGraphBuilder Output(string name, TensorElementKind type, params TensorDim[]? dims)
    {
        _graph.Output.Add(MakeValueInfo(name, type, dims));
        return this;
    }

    /// <summary>Declares the type of an intermediate value (optional; ONNX Runtime infers it).</summary>
    public OnnxGraphBuilder ValueInfo(string name, TensorElementKind type, params TensorDim[]? dims)
    {
        _graph.ValueInfo.Add(MakeValueInfo(name, type, dims));
        return this;
    }

    /// <summary>Adds a node of the default (<c>ai.onnx</c>) domain. Its name is <c>{opType}_{n}</c>.</summary>
    /// <param name="opType">Operator, e.g. <c>"Add"</c>.</param>
    /// <param name="inputs">Input value names; an empty string skips an optional input.</param>
    /// <param name="outputs">Output value names.</param>
    /// <param name="attributes">Attributes.</param>
    public OnnxGraphBuilder Node(string opType, string[] inputs, string[] outputs, params NodeAttribute[] attributes) =>
        NodeInDomain("", opType, inputs, outputs, attributes);

    /// <summary>
    /// Adds a node of operator domain <paramref name="domain"/> (e.g. <c>"ai.onnx.ml"</c>); declare the
    /// domain's version with <see cref="OpsetImport"/>.
    /// </summary>
    public OnnxGraphBuilder NodeInDomain(string domain, string opType, string[] inputs, string[] outputs, params NodeAttribute[] attributes)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentException.ThrowIfNullOrEmpty(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(attributes);
        if (outputs.Length == 0)
        {
            throw new ArgumentException($"Node {opType} needs at least one output.", nameof(outputs));
        }

        _nodeNameCounts.TryGetValue(opType, out int n);
        _nodeNameCounts[opType] = n + 1;
        var node = new NodeProto
        {
            OpType = opType,
            Domain = domain,
            Name = string.Create(CultureInfo.InvariantCulture, $"{opType}_{n}"),
        };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var attribute in attributes)
        {
            ArgumentNullException.ThrowIfNull(attribute, nameof(attributes));
            if (!seen.Add(attribute.Name))
            {
                throw new ArgumentException($"Node {opType} has attribute '{attribute.Name}' twice.", nameof(attributes));
            }

            node.Attribute.Add(attribute.ToProto());
        }

        _graph.Node.Add(node);
        return this;
    }

    /// <summary>
    /// Starts a subgraph named <paramref name="graphName"/>, e.g. a branch of an <c>If</c> node: build it with the
    /// usual calls, then attach it with <see cref="NodeAttribute.Graph"/> to a node of this builder. Its nodes may use
    /// any value of the enclosing graphs defined before that node (outer scope); its node names continue this
    /// builder's numbering. It is checked with the model (<see cref="ToModelProto"/>), where every value name must be
    /// unique across the model and its subgraphs (a subgraph never shadows an outer value).
    /// </summary>
    public OnnxGraphBuilder Subgraph(string graphName) => new(graphName, this);

    /// <summary>Adds a constant tensor (weights) whose element bytes are given little-endian, row-major.</summary>
    /// <exception cref="ArgumentException">The byte count does not match the type and shape.</exception>
    public OnnxGraphBuilder Initializer(string name, TensorElementKind type, long[] dims, ReadOnlySpan<byte> littleEndianData) =>
        Initializer(OnnxTensor.Create(name, type, dims, littleEndianData));

    /// <summary>Adds a FLOAT constant tensor.</summary>
    public OnnxGraphBuilder Initializer(string name, long[] dims, float[] values) =>
        Initializer(OnnxTensor.Create<float>(name, dims, values));

    /// <summary>Adds an INT64 constant tensor.</summary>
    public OnnxGraphBuilder Initializer(string name, long[] dims, long[] values) =>
        Initializer(OnnxTensor.Create<long>(name, dims, values));

    /// <summary>Adds an INT32 constant tensor.</summary>
    public OnnxGraphBuilder Initializer(string name, long[] dims, int[] values) =>
        Initializer(OnnxTensor.Create<int>(name, dims, values));

    /// <summary>Adds a constant tensor of any type, including STRING.</summary>
    public OnnxGraphBuilder Initializer(OnnxTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentException.ThrowIfNullOrEmpty(tensor.Name, nameof(tensor));
        _graph.Initializer.Add(TensorProtoFile.ToProto(tensor));
        return this;
    }

    /// <summary>Imports an additional operator set domain, e.g. <c>("ai.onnx.ml", 3)</c>.</summary>
    public OnnxGraphBuilder OpsetImport(string domain, long version)
    {
        ArgumentException.ThrowIfNullOrEmpty(domain);
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        _extraOpsets[domain] = version;
        return this;
    }

    /// <summary>Sets the model's <c>doc_string</c>.</summary>
    public OnnxGraphBuilder DocString(string docString)
    {
        _docString = docString ?? "";
        return this;
    }

    /// <summary>Adds a <c>metadata_props</c> entry.</summary>
    public OnnxGraphBuilder Metadata(string key, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        _metadata.Add(new StringStringEntryProto { Key = key, Value = value ?? "" });
        return this;
    }

    /// <summary>Overrides the IR version written (see <see cref="IrVersion"/>).</summary>
    public OnnxGraphBuilder WithIrVersion(long irVersion)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(irVersion, 3);
        _irVersion = irVersion;
        return this;
    }

    /// <summary>
    /// Builds the <c>ModelProto</c> after checking that the graph and its subgraphs are well-formed: value names
    /// unique across them all, every node input defined before use (in its graph or an enclosing one), every output
    /// defined.
    /// </summary>
    /// <exception cref="InvalidOperationException">The graph is not well-formed, or this builder makes a subgraph.</exception>
    public ModelProto ToModelProto()
    {
        if (IsSubgraph)
        {
            throw new InvalidOperationException($"Graph '{_graph.Name}' is a subgraph: attach it to a node with NodeAttribute.Graph.");
        }

        Validate(_graph, outerScope: null);
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = ProducerName,
            ProducerVersion = ProducerVersion,
            DocString = _docString,
            Graph = _graph.Clone(),
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OpsetVersion });
        foreach (var (domain, version) in _extraOpsets)
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        }

        model.MetadataProps.AddRange(_metadata.Select(m => m.Clone()));
        return model;
    }

    /// <summary>The serialized <c>ModelProto</c>; the same calls always give the same bytes.</summary>
    /// <exception cref="InvalidOperationException">The graph is not well-formed.</exception>
    public byte[] ToModelBytes() => ToModelProto().ToByteArray();

    /// <summary>Writes the serialized model to <paramref name="path"/>, creating parent directories.</summary>
    /// <exception cref="InvalidOperationException">The graph is not well-formed.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes = ToModelBytes();
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllBytes(path, bytes);
    }

    private static ValueInfoProto MakeValueInfo(string name, TensorElementKind type, TensorDim[]? dims)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (type == TensorElementKind.Undefined || !Enum.IsDefined(type))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a tensor element type.");
        }

        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims is not null)
        {
            var shape = new TensorShapeProto();
            foreach (var dim in dims)
            {
                var d = new TensorShapeProto.Types.Dimension();
                if (dim.Value is long v)
                {
                    d.DimValue = v;
                }
                else if (dim.Symbol is string s)
                {
                    d.DimParam = s;
                }

                shape.Dim.Add(d);
            }

            tensorType.Shape = shape;
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    /// <summary>The graph as it stands, unchecked (for <see cref="NodeAttribute.Graph"/>; checked with the model).</summary>
    internal GraphProto ToGraphProto() => _graph.Clone();

    /// <summary>
    /// Checks <paramref name="graph"/> and, recursively, the subgraphs of its nodes' attributes. A subgraph sees
    /// <paramref name="outerScope"/>: the values of the enclosing graphs defined before the node that holds it.
    /// <paramref name="taken"/> collects every name defined anywhere in the model, which keeps names unique.
    /// </summary>
    private static void Validate(GraphProto graph, IReadOnlySet<string>? outerScope, HashSet<string>? taken = null)
    {
        taken ??= new HashSet<string>(StringComparer.Ordinal);
        var visible = new HashSet<string>(outerScope ?? new HashSet<string>(), StringComparer.Ordinal);
        void Define(string name)
        {
            if (!taken.Add(name))
            {
                throw new InvalidOperationException($"Graph '{graph.Name}': value '{name}' is defined twice.");
            }

            visible.Add(name);
        }

        foreach (var input in graph.Input)
        {
            Define(input.Name);
        }

        foreach (var init in graph.Initializer)
        {
            // IR >= 4 allows an initializer to double as the default of an input of the same name.
            if (!graph.Input.Any(i => i.Name == init.Name))
            {
                Define(init.Name);
            }
        }

        foreach (var node in graph.Node)
        {
            foreach (string input in node.Input)
            {
                if (input.Length > 0 && !visible.Contains(input))
                {
                    throw new InvalidOperationException(
                        $"Graph '{graph.Name}': node {node.Name} uses '{input}' before it is defined (add nodes in topological order).");
                }
            }

            foreach (var subgraph in node.Attribute.SelectMany(a => a.G is null ? a.Graphs : a.Graphs.Prepend(a.G)))
            {
                Validate(subgraph, visible, taken);
            }

            foreach (string output in node.Output)
            {
                if (output.Length > 0)
                {
                    Define(output);
                }
            }
        }

        if (graph.Output.Count == 0)
        {
            throw new InvalidOperationException($"Graph '{graph.Name}' has no outputs.");
        }

        var outputs = new HashSet<string>(StringComparer.Ordinal);
        foreach (var output in graph.Output)
        {
            if (!visible.Contains(output.Name))
            {
                throw new InvalidOperationException($"Graph '{graph.Name}': output '{output.Name}' is never produced.");
            }

            if (!outputs.Add(output.Name))
            {
                throw new InvalidOperationException($"Graph '{graph.Name}': output '{output.Name}' is listed twice.");
            }
        }
    }
}
