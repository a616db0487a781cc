using System.Text.Json;

namespace InferenceServer.Client.Cli.Tensors;

/// <summary>
/// Inputs written as JSON: a map of inputs (<c>{"INPUT0": {"datatype": "INT32", "shape": [1, 16], "data": [...]}}</c>),
/// KServe's request JSON (<c>{"inputs": [{"name", "datatype", "shape", "data"}], "outputs": [{"name"}]}</c>), or, for one
/// named input, a single <c>{"datatype", "shape", "data"}</c> object. <c>data</c> may be flat or nested.
/// </summary>
internal static class JsonInputs
{
    /// <summary>The inputs of a JSON file, and the outputs a KServe request asked for.</summary>
    public sealed record Request(IReadOnlyList<Tensor> Inputs, IReadOnlyList<string> Outputs);

    public static Request ReadRequest(string path)
    {
        using var document = Load(path);
        return ParseRequest(document.RootElement, path);
    }

    /// <summary>One input from a file holding that input's object (or a map/request with an input of that name).</summary>
    public static Tensor ReadInput(string path, string name)
    {
        using var document = Load(path);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("data", out _))
        {
            return ParseTensor(name, root, path);
        }
        var request = ParseRequest(root, path);
        return request.Inputs.FirstOrDefault(i => i.Name == name)
            ?? (request.Inputs.Count == 1 ? request.Inputs[0].WithName(name)
                : throw new CliInputException($"{path}: no input named {name} (it has {string.Join(", ", request.Inputs.Select(i => i.Name))})"));
    }

    public static Request ParseRequest(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new CliInputException($"{source}: expected a JSON object (a map of inputs, or a KServe request with \"inputs\")");
        }
        if (root.TryGetProperty("inputs", out var inputs) && inputs.ValueKind == JsonValueKind.Array)
        {
            var tensors = new List<Tensor>();
            foreach (var input in inputs.EnumerateArray())
            {
                if (input.ValueKind != JsonValueKind.Object || !input.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                {
                    throw new CliInputException($"{source}: every element of \"inputs\" needs a \"name\"");
                }
                tensors.Add(ParseTensor(name.GetString()!, input, source));
            }
            var outputs = new List<string>();
            if (root.TryGetProperty("outputs", out var requested) && requested.ValueKind == JsonValueKind.Array)
            {
                outputs.AddRange(requested.EnumerateArray()
                    .Select(o => o.ValueKind == JsonValueKind.Object && o.TryGetProperty("name", out var n) ? n.GetString() : null)
                    .OfType<string>());
            }
            return new Request(tensors, outputs);
        }
        var map = new List<Tensor>();
        foreach (var property in root.EnumerateObject())
        {
            map.Add(ParseTensor(property.Name, property.Value, source));
        }
        if (map.Count == 0)
        {
            throw new CliInputException($"{source}: no inputs");
        }
        return new Request(map, []);
    }

    public static Tensor ParseTensor(string name, JsonElement element, string source)
    {
        var where = $"{source}: input {name}";
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new CliInputException($"{where}: expected an object with \"datatype\", \"shape\" and \"data\"");
        }
        if (!element.TryGetProperty("datatype", out var datatypeElement) || datatypeElement.ValueKind != JsonValueKind.String)
        {
            throw new CliInputException($"{where}: \"datatype\" is missing (one of {string.Join(", ", DataType.All)})");
        }
        var datatype = datatypeElement.GetString()!;
        if (!DataType.IsKnown(datatype))
        {
            throw new CliInputException($"{where}: unknown datatype '{datatype}' (one of {string.Join(", ", DataType.All)})");
        }
        if (!element.TryGetProperty("data", out var data))
        {
            throw new CliInputException($"{where}: \"data\" is missing");
        }
        long[]? shape = null;
        if (element.TryGetProperty("shape", out var shapeElement))
        {
            try
            {
                shape = shapeElement.EnumerateArray().Select(d => d.GetInt64()).ToArray();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new CliInputException($"{where}: \"shape\" must be an array of integers");
            }
        }
        if (datatype == DataType.Bf16)
        {
            throw new CliInputException($"{where}: BF16 has no JSON form; give it as a .npy file (float32 values are rounded to bfloat16 on the server side only if the model accepts FP32)");
        }
        if (datatype == DataType.Bytes)
        {
            var index = 0;
            foreach (var value in Leaves(data))
            {
                if (value.ValueKind != JsonValueKind.String)
                {
                    throw new CliInputException($"{where}: element {index} must be a string for BYTES");
                }
                index++;
            }
        }
        try
        {
            return Tensor.FromJsonData(name, datatype, shape, data);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            throw new CliInputException($"{where}: {e.Message}");
        }
    }

    /// <summary>The values of a flat or nested <c>data</c> array, in row-major order.</summary>
    private static IEnumerable<JsonElement> Leaves(JsonElement data) =>
        data.ValueKind == JsonValueKind.Array ? data.EnumerateArray().SelectMany(Leaves) : [data];

    private static JsonDocument Load(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CliInputException($"{path}: not valid JSON: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliInputException($"cannot read {path}: {e.Message}");
        }
    }
}
