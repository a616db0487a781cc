using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>
/// One module (or other scripted object) of a TorchScript archive: its TorchScript class, e.g.
/// <c>__torch__.torch.nn.modules.linear.Linear</c>, and its attributes: submodules (<see cref="TorchScriptObject"/>),
/// parameters and buffers (<see cref="TorchScriptTensor"/>), numbers (<see cref="long"/>, <see cref="double"/>),
/// <see cref="bool"/>, strings, null, tuples (<c>object?[]</c>), lists and dicts.
/// </summary>
public sealed class TorchScriptObject
{
    internal TorchScriptObject(string className, IReadOnlyDictionary<string, object?> attributes, IReadOnlyList<string> order)
    {
        ClassName = className;
        Attributes = attributes;
        AttributeNames = order;
    }

    /// <summary>The TorchScript class's qualified name.</summary>
    public string ClassName { get; }

    /// <summary>The class name without its module, e.g. <c>Linear</c>.</summary>
    public string ShortClassName => ClassName[(ClassName.LastIndexOf('.') + 1)..];

    /// <summary>The attributes by name.</summary>
    public IReadOnlyDictionary<string, object?> Attributes { get; }

    /// <summary>The attribute names in the order the module registered them (a <c>Sequential</c>'s order of calls).</summary>
    public IReadOnlyList<string> AttributeNames { get; }

    /// <summary>The submodule <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">There is no such attribute, or it is not a module.</exception>
    public TorchScriptObject Module(string name) => Get<TorchScriptObject>(name, "a module");

    /// <summary>The tensor (parameter or buffer) <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">There is no such attribute, or it is not a tensor.</exception>
    public TorchScriptTensor Tensor(string name) => Get<TorchScriptTensor>(name, "a tensor");

    /// <summary>The integer attribute <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">There is no such attribute, or it is not an integer.</exception>
    public long Int(string name) => Get<long>(name, "an integer");

    /// <summary>The float attribute <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">There is no such attribute, or it is not a float.</exception>
    public double Float(string name) => Get<double>(name, "a float");

    /// <summary>Whether attribute <paramref name="name"/> is a tensor (a parameter or buffer; null means none, as a Linear without bias).</summary>
    public bool HasTensor(string name) => Attributes.TryGetValue(name, out object? value) && value is TorchScriptTensor;

    /// <summary>
    /// Every tensor attribute of this module and its submodules (parameters, buffers and plain tensor attributes), named
    /// by dotted path as <c>named_parameters</c> and TorchScript's <c>named_attributes</c> name them.
    /// </summary>
    public IEnumerable<(string Name, TorchScriptTensor Tensor)> NamedTensors(string prefix = "")
    {
        foreach (string name in AttributeNames)
        {
            switch (Attributes[name])
            {
                case TorchScriptTensor tensor:
                    yield return (prefix + name, tensor);
                    break;
                case TorchScriptObject child:
                    foreach (var named in child.NamedTensors(prefix + name + "."))
                    {
                        yield return named;
                    }

                    break;
            }
        }
    }

    private T Get<T>(string name, string what) =>
        Attributes.TryGetValue(name, out object? value) && value is T typed
            ? typed
            : throw new InvalidDataException($"{ClassName} has no attribute '{name}' that is {what}.");
}

/// <summary>
/// Reads a TorchScript archive (<c>torch.jit.save</c>'s zip) without libtorch: the module tree and its tensors from
/// <c>data.pkl</c> and <c>data/*</c> (through a pickle reader that runs no code), and the TorchScript source of its
/// classes from <c>code/</c> (where the forward methods and the <c>Final</c> constants, such as a LayerNorm's
/// <c>eps</c>, are written). Parsing the archive here rather than loading it with TorchSharp keeps the ModelBuilder a
/// plain managed tool: no libtorch download of hundreds of megabytes, and no re-execution under a newer C++ runtime
/// on Debian 12 (server/compat/). The tests check what this reads against TorchSharp's own reading of the same file.
/// </summary>
public sealed class TorchScriptArchive
{
    private readonly Dictionary<string, string> _code;

    private TorchScriptArchive(TorchScriptObject root, Dictionary<string, string> code)
    {
        Root = root;
        _code = code;
    }

    /// <summary>The top-level module (the one <c>torch.jit.save</c> saved).</summary>
    public TorchScriptObject Root { get; }

    /// <summary>Reads the archive at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a TorchScript archive this reader understands.</exception>
    public static TorchScriptArchive Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ZipArchive opened;
        try
        {
            opened = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a TorchScript archive: {e.Message}", e);
        }

        using var zip = opened;
        var entries = zip.Entries.Where(e => !e.FullName.EndsWith('/')).ToDictionary(e => e.FullName, StringComparer.Ordinal);
        // torch.jit.save puts everything under one folder named after the file: "<name>/data.pkl", "<name>/data/0", ...
        string? pickle = entries.Keys.FirstOrDefault(n => n == "data.pkl" || (n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.Count(c => c == '/') == 1));
        if (pickle is null)
        {
            throw new InvalidDataException($"'{path}' has no data.pkl: not a TorchScript archive.");
        }

        string prefix = pickle[..^"data.pkl".Length];
        if (entries.TryGetValue(prefix + "byteorder", out var order) && Text(order).Trim() != "little")
        {
            throw new InvalidDataException($"'{path}' stores its tensors {Text(order).Trim()}-endian; only little-endian archives are read.");
        }

        var storages = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        object? PersistentLoad(object? id)
        {
            // ('storage', <torch.XStorage>, key, location, element count): the bytes are <prefix>data/<key>.
            if (id is not object?[] { Length: >= 5 } t || t[0] as string != "storage" || t[1] is not PickleGlobal type || t[2] is not string key)
            {
                throw new InvalidDataException($"'{path}': a persistent id of data.pkl is not a storage reference.");
            }

            if (!storages.TryGetValue(key, out byte[]? bytes))
            {
                bytes = entries.TryGetValue(prefix + "data/" + key, out var entry)
                    ? Bytes(entry)
                    : throw new InvalidDataException($"'{path}' has no entry {prefix}data/{key}.");
                storages.Add(key, bytes);
            }

            return new StorageRef(key, StorageType(type), bytes);
        }

        object? root;
        try
        {
            root = Unpickler.Load(Bytes(entries[pickle]), PersistentLoad, Reduce);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith($"'{path}'", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"'{path}': {pickle}: {e.Message}", e);
        }

        if (Convert(root) is not TorchScriptObject module)
        {
            throw new InvalidDataException($"'{path}': data.pkl does not hold a module.");
        }

        var code = entries.Where(e => e.Key.StartsWith(prefix + "code/", StringComparison.Ordinal) && e.Key.EndsWith(".py", StringComparison.Ordinal))
            .ToDictionary(e => e.Key[(prefix.Length + "code/".Length)..], e => Text(e.Value), StringComparer.Ordinal);
        return new TorchScriptArchive(module, code);
    }

    /// <summary>
    /// The TorchScript source of class <paramref name="className"/> (<c>__torch__.llm.Block</c> lives in
    /// <c>code/__torch__/llm.py</c>): from its <c>class</c> line to the next top-level line.
    /// </summary>
    /// <exception cref="InvalidDataException">The archive has no source for the class.</exception>
    public string ClassSource(string className)
    {
        ArgumentException.ThrowIfNullOrEmpty(className);
        int dot = className.LastIndexOf('.');
        string file = className[..Math.Max(dot, 0)].Replace('.', '/') + ".py";
        string name = className[(dot + 1)..];
        if (!_code.TryGetValue(file, out string? source))
        {
            throw new InvalidDataException($"The archive has no code/{file} for class {className}.");
        }

        var lines = source.Split('\n');
        int start = Array.FindIndex(lines, l => l.StartsWith($"class {name}(", StringComparison.Ordinal));
        if (start < 0)
        {
            throw new InvalidDataException($"code/{file} does not define class {name}.");
        }

        int end = Array.FindIndex(lines, start + 1, l => l.Length > 0 && !char.IsWhiteSpace(l[0]));
        return string.Join('\n', lines[start..(end < 0 ? lines.Length : end)]);
    }

    /// <summary>
    /// The value of the <c>Final</c> constant <paramref name="name"/> of class <paramref name="className"/> as its source
    /// writes it (<c>eps : Final[float] = 1.0000000000000001e-05</c> gives <c>1.0000000000000001e-05</c>; strings keep their quotes).
    /// </summary>
    /// <exception cref="InvalidDataException">The class has no such constant.</exception>
    public string FinalConstant(string className, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var match = Regex.Match(ClassSource(className), $@"^\s+{Regex.Escape(name)}\s*:\s*Final\[.*\]\s*=\s*(?<value>.+?)\s*$", RegexOptions.Multiline);
        return match.Success
            ? match.Groups["value"].Value
            : throw new InvalidDataException($"Class {className} has no Final constant '{name}'.");
    }

    /// <summary>A float <see cref="FinalConstant"/>.</summary>
    /// <exception cref="InvalidDataException">The class has no such constant, or it is not a number.</exception>
    public double FinalFloat(string className, string name)
    {
        string value = FinalConstant(className, name);
        return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            ? v
            : throw new InvalidDataException($"Constant '{name}' of {className} is '{value}', not a number.");
    }

    private sealed record StorageRef(string Key, TorchScalarType Type, byte[] Bytes);

    /// <summary>The calls data.pkl makes: rebuilding tensors and parameters, and the empty OrderedDict of backward hooks.</summary>
    private static object? Reduce(PickleGlobal callable, object?[] args)
    {
        switch (callable.FullName)
        {
            case "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_tensor":
                if (args is not [StorageRef storage, long offset, object?[] size, object?[] stride, ..])
                {
                    throw new InvalidDataException("A tensor rebuild in data.pkl has unexpected arguments.");
                }

                return new TorchScriptTensor(storage.Key, storage.Type, storage.Bytes, offset, Longs(size), Longs(stride));
            case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                return args.Length > 0 && args[0] is TorchScriptTensor data
                    ? data
                    : throw new InvalidDataException("A parameter rebuild in data.pkl does not wrap a tensor.");
            case "collections.OrderedDict" when args.Length == 0:
                return new OrderedDictionary<object, object?>();
            default:
                return new PickleCall(callable, args);
        }
    }

    private static long[] Longs(object?[] values) =>
        values.Select(v => v is long l ? l : throw new InvalidDataException("A tensor's size or stride is not an integer.")).ToArray();

    private static TorchScalarType StorageType(PickleGlobal type) => type.FullName switch
    {
        "torch.FloatStorage" => TorchScalarType.Float32,
        "torch.DoubleStorage" => TorchScalarType.Float64,
        "torch.HalfStorage" => TorchScalarType.Float16,
        "torch.BFloat16Storage" => TorchScalarType.BFloat16,
        "torch.LongStorage" => TorchScalarType.Int64,
        "torch.IntStorage" => TorchScalarType.Int32,
        "torch.ByteStorage" => TorchScalarType.UInt8,
        "torch.BoolStorage" => TorchScalarType.Bool,
        _ => throw new InvalidDataException($"Storage type {type.FullName} is not one this reader understands."),
    };

    /// <summary>Pickled modules (<see cref="PickleObject"/>) become <see cref="TorchScriptObject"/>s, recursively.</summary>
    private static object? Convert(object? value) => value switch
    {
        PickleObject o => new TorchScriptObject(
            o.Type.FullName,
            o.State.ToDictionary(p => p.Key, p => Convert(p.Value), StringComparer.Ordinal),
            o.State.Keys.ToArray()),
        object?[] tuple => tuple.Select(Convert).ToArray(),
        List<object?> list => list.Select(Convert).ToList(),
        _ => value,
    };

    private static byte[] Bytes(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        var bytes = new byte[entry.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static string Text(ZipArchiveEntry entry) => Encoding.UTF8.GetString(Bytes(entry));
}
