namespace InferenceServer.Client.Cli.Tensors;

/// <summary>Reads <c>--input</c> values (<c>NAME=file.npy</c>, <c>NAME=file.json</c>, or a JSON file of several inputs) and checks them against the model.</summary>
internal static class InputFiles
{
    /// <summary>
    /// The name of an input read from a file that does not name it (a lone .npy), until the model's metadata names it
    /// (not empty, since a tensor needs a name, and with a NUL so it is no real input's name).
    /// </summary>
    public const string Unnamed = "\0unnamed";

    /// <summary>Reads one <c>--input</c> value; a JSON request also contributes requested outputs.</summary>
    public static JsonInputs.Request Load(string spec)
    {
        string? name = null;
        var path = spec;
        var equals = spec.IndexOf('=', StringComparison.Ordinal);
        if (equals > 0 && !File.Exists(spec))
        {
            name = spec[..equals];
            path = spec[(equals + 1)..];
        }
        return LoadFile(path, name);
    }

    /// <summary>Reads one file: a .npy (one input) or a .json (one input when named, else a map or a request).</summary>
    public static JsonInputs.Request LoadFile(string path, string? name)
    {
        if (!File.Exists(path))
        {
            throw new CliInputException(Directory.Exists(path) ? $"{path} is a folder; use --input-dir for a folder of inputs" : $"input file not found: {path}");
        }
        var extension = Path.GetExtension(path).ToLowerInvariant();
        return extension switch
        {
            ".npy" => new JsonInputs.Request([NpyFormat.Read(path, name ?? Unnamed)], []),
            ".json" when name is not null => new JsonInputs.Request([JsonInputs.ReadInput(path, name)], []),
            ".json" => JsonInputs.ReadRequest(path),
            _ => throw new CliInputException($"{path}: inputs are NumPy .npy files or .json files"),
        };
    }

    /// <summary>
    /// Names an unnamed input after the model's only (remaining) input, and checks every input's name and datatype
    /// against the metadata, so a mistake is a clear message rather than a server error.
    /// </summary>
    public static IReadOnlyList<Tensor> Resolve(IReadOnlyList<Tensor> inputs, ModelMetadata model, string source)
    {
        var resolved = new List<Tensor>();
        foreach (var input in inputs)
        {
            var tensor = input;
            if (tensor.Name == Unnamed)
            {
                var remaining = model.Inputs.Where(i => inputs.All(given => given.Name != i.Name)).ToList();
                if (remaining.Count != 1)
                {
                    throw new CliInputException($"{source}: say which input this is (NAME=file.npy); model {model.Name} has inputs {string.Join(", ", model.Inputs.Select(i => i.Name))}");
                }
                tensor = tensor.WithName(remaining[0].Name);
            }
            var expected = model.Inputs.FirstOrDefault(i => i.Name == tensor.Name)
                ?? throw new CliInputException($"{source}: model {model.Name} has no input {tensor.Name} (its inputs: {string.Join(", ", model.Inputs.Select(i => i.Name))})");
            if (expected.Datatype != tensor.Datatype)
            {
                throw new CliInputException($"{source}: input {tensor.Name} is {tensor.Datatype} but model {model.Name} expects {expected.Datatype}"
                    + (NumpyTypeName(expected.Datatype) is { } numpy ? $" (in NumPy: a.astype(np.{numpy}))" : ""));
            }
            resolved.Add(tensor);
        }
        return resolved;
    }

    private static string? NumpyTypeName(string datatype) => datatype switch
    {
        "BOOL" => "bool_", "UINT8" => "uint8", "UINT16" => "uint16", "UINT32" => "uint32", "UINT64" => "uint64",
        "INT8" => "int8", "INT16" => "int16", "INT32" => "int32", "INT64" => "int64",
        "FP16" => "float16", "FP32" => "float32", "FP64" => "float64", "BYTES" => "str_",
        _ => null,
    };
}
