using System.Buffers.Binary;
using System.Globalization;
using System.Text;
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
    public sealed record Request(IReadOnlyList<HostTensor> Inputs, IReadOnlyList<string> Outputs);

    public static Request ReadRequest(string path)
    {
        using var document = Load(path);
        return ParseRequest(document.RootElement, path);
    }

    /// <summary>One input from a file holding that input's object (or a map/request with an input of that name).</summary>
    public static HostTensor ReadInput(string path, string name)
    {
        using var document = Load(path);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("data", out _))
        {
            return ParseTensor(name, root, path);
        }
        var request = ParseRequest(root, path);
        return request.Inputs.FirstOrDefault(i => i.Name == name)
            ?? (request.Inputs.Count == 1 ? request.Inputs[0].Rename(name)
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
            var tensors = new List<HostTensor>();
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
        var map = new List<HostTensor>();
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

    public static HostTensor ParseTensor(string name, JsonElement element, string source)
    {
        var where = $"{source}: input {name}";
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new CliInputException($"{where}: expected an object with \"datatype\", \"shape\" and \"data\"");
        }
        if (!element.TryGetProperty("datatype", out var datatypeElement) || datatypeElement.ValueKind != JsonValueKind.String)
        {
            throw new CliInputException($"{where}: \"datatype\" is missing (one of {string.Join(", ", Datatypes.Names)})");
        }
        var datatype = datatypeElement.GetString()!;
        if (!Datatypes.IsKnown(datatype))
        {
            throw new CliInputException($"{where}: unknown datatype '{datatype}' (one of {string.Join(", ", Datatypes.Names)})");
        }
        if (!element.TryGetProperty("data", out var data))
        {
            throw new CliInputException($"{where}: \"data\" is missing");
        }
        var values = new List<JsonElement>();
        Flatten(data, values);
        long[] shape;
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
        else
        {
            shape = [values.Count];
        }
        HostTensor tensor;
        if (datatype == "BYTES")
        {
            tensor = new HostTensor
            {
                Name = name, Datatype = datatype, Shape = shape,
                Elements = values.Select((v, i) => v.ValueKind == JsonValueKind.String ? Encoding.UTF8.GetBytes(v.GetString()!)
                    : throw new CliInputException($"{where}: element {i} must be a string for BYTES")).ToArray(),
            };
        }
        else if (datatype == "BF16")
        {
            throw new CliInputException($"{where}: BF16 has no JSON form; give it as a .npy file (float32 values are rounded to bfloat16 on the server side only if the model accepts FP32)");
        }
        else
        {
            var size = Datatypes.ElementSize(datatype);
            var bytes = new byte[values.Count * size];
            for (var i = 0; i < values.Count; i++)
            {
                Encode(datatype, values[i], bytes.AsSpan(i * size, size), $"{where}: element {i}");
            }
            tensor = new HostTensor { Name = name, Datatype = datatype, Shape = shape, Data = bytes };
        }
        tensor.Validate(where);
        return tensor;
    }

    private static void Flatten(JsonElement element, List<JsonElement> values)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
            {
                Flatten(item, values);
            }
        }
        else
        {
            values.Add(element);
        }
    }

    private static void Encode(string datatype, JsonElement value, Span<byte> target, string where)
    {
        try
        {
            switch (datatype)
            {
                case "BOOL":
                    target[0] = value.ValueKind switch
                    {
                        JsonValueKind.True => 1,
                        JsonValueKind.False => 0,
                        JsonValueKind.Number when value.GetInt32() is 0 or 1 => (byte)value.GetInt32(),
                        _ => throw new CliInputException($"{where}: {value.GetRawText()} is not a BOOL (true or false)"),
                    };
                    break;
                case "UINT8": target[0] = value.GetByte(); break;
                case "UINT16": BinaryPrimitives.WriteUInt16LittleEndian(target, value.GetUInt16()); break;
                case "UINT32": BinaryPrimitives.WriteUInt32LittleEndian(target, value.GetUInt32()); break;
                case "UINT64": BinaryPrimitives.WriteUInt64LittleEndian(target, value.GetUInt64()); break;
                case "INT8": target[0] = (byte)value.GetSByte(); break;
                case "INT16": BinaryPrimitives.WriteInt16LittleEndian(target, value.GetInt16()); break;
                case "INT32": BinaryPrimitives.WriteInt32LittleEndian(target, value.GetInt32()); break;
                case "INT64": BinaryPrimitives.WriteInt64LittleEndian(target, value.GetInt64()); break;
                case "FP16": BinaryPrimitives.WriteHalfLittleEndian(target, (Half)Float(value, where)); break;
                case "FP32": BinaryPrimitives.WriteSingleLittleEndian(target, (float)Float(value, where)); break;
                case "FP64": BinaryPrimitives.WriteDoubleLittleEndian(target, Float(value, where)); break;
                default: throw new CliInputException($"{where}: datatype {datatype} has no JSON form");
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CliInputException($"{where}: {value.GetRawText()} is not a valid {datatype} value");
        }
    }

    private static double Float(JsonElement value, string where) => value.ValueKind switch
    {
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.String => value.GetString() switch
        {
            "NaN" or "nan" => double.NaN,
            "Infinity" or "inf" => double.PositiveInfinity,
            "-Infinity" or "-inf" => double.NegativeInfinity,
            var other => throw new CliInputException($"{where}: \"{other}\" is not a number"),
        },
        _ => throw new CliInputException($"{where}: {value.GetRawText()} is not a number"),
    };

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
