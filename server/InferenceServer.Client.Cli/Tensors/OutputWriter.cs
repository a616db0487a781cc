using System.Text.Json;

namespace InferenceServer.Client.Cli.Tensors;

/// <summary>Prints outputs (a table or JSON) and saves them (one NAME.npy per output).</summary>
internal static class OutputWriter
{
    /// <summary>At most this many values per output in the table; JSON has them all.</summary>
    public const int TableValues = 32;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Print(TextWriter output, InferResult result, string format)
    {
        if (format == "json")
        {
            output.WriteLine(ToJson(result));
            return;
        }
        output.WriteLine($"model {result.ModelName}" + (string.IsNullOrEmpty(result.ModelVersion) ? "" : $" version {result.ModelVersion}"));
        foreach (var tensor in result.Outputs)
        {
            var count = (int)Math.Min(tensor.ElementCount, TableValues);
            var values = Enumerable.Range(0, count).Select(i => ElementFormat.FormatElement(tensor, i));
            var more = tensor.ElementCount > count ? $" ... ({tensor.ElementCount - count} more)" : "";
            output.WriteLine($"{tensor.Name,-16} {tensor.Datatype,-6} [{string.Join(", ", tensor.Shape)}]  {string.Join(" ", values)}{more}");
        }
    }

    public static string ToJson(InferResult result)
    {
        var body = new Dictionary<string, object?>
        {
            ["model_name"] = result.ModelName,
            ["model_version"] = string.IsNullOrEmpty(result.ModelVersion) ? null : result.ModelVersion,
            ["outputs"] = result.Outputs.Select(t => new Dictionary<string, object>
            {
                ["name"] = t.Name,
                ["datatype"] = t.Datatype,
                ["shape"] = t.Shape,
                ["data"] = Enumerable.Range(0, (int)t.ElementCount).Select(i => ElementFormat.JsonElementValue(t, i)).ToArray(),
            }).ToArray(),
        };
        return JsonSerializer.Serialize(body, Indented);
    }

    /// <summary>Writes each output to <paramref name="directory"/>/NAME.npy; returns the paths.</summary>
    public static IReadOnlyList<string> Save(string directory, InferResult result)
    {
        Directory.CreateDirectory(directory);
        var paths = new List<string>();
        foreach (var tensor in result.Outputs)
        {
            var path = Path.Combine(directory, SafeFileName(tensor.Name) + ".npy");
            NpyFormat.Write(path, tensor);
            paths.Add(path);
        }
        return paths;
    }

    private static string SafeFileName(string name)
    {
        var invalid = Path.GetInvalidFileNameChars();
        return new string(name.Select(c => invalid.Contains(c) ? '_' : c).ToArray());
    }
}
