using System.Reflection;
using YamlDotNet.Serialization.NamingConventions;

namespace InferenceServer.Configuration;

/// <summary>The names of the sources a configuration value can come from besides a file.</summary>
public static class ConfigSources
{
    /// <summary>Derived from the model itself: its graph's inputs and outputs, a variable leading dimension, its file type.</summary>
    public const string Model = "model";

    /// <summary>The server's or the schema's default.</summary>
    public const string Default = "default";
}

/// <summary>One source of configuration values (a file's contents) and the name shown for it.</summary>
/// <param name="Source">What the configuration endpoint shows as the origin, e.g. <c>config.yaml</c>.</param>
/// <param name="Values">The values it sets; every field optional.</param>
public sealed record ConfigLayer(string Source, ModelConfigFile Values);

/// <summary>
/// A model's configuration sources merged by precedence, field by field: the values of the first source that sets a
/// field win, and each set field remembers its source. Declared inputs and outputs merge by tensor name.
/// </summary>
/// <remarks>
/// The precedence, highest first: the model's own configuration file (<c>config.yaml</c>, <c>config.yml</c> or
/// <c>config.json</c>), then files a model format brings (Triton's <c>config.pbtxt</c>, onnxruntime-genai's
/// <c>genai_config.json</c>, Hugging Face's <c>config.json</c>, as readers for them are added to <see cref="Read"/>),
/// then what <see cref="ModelConfigResolver"/> derives from the model's graph, then defaults.
/// </remarks>
public sealed class ConfiguredModel
{
    private static readonly PropertyInfo[] Fields = typeof(ModelConfigFile).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanRead && p.CanWrite)
        .ToArray();

    private readonly Dictionary<string, string> _origins;

    private ConfiguredModel(ModelConfigFile values, Dictionary<string, string> origins)
    {
        Values = values;
        _origins = origins;
    }

    /// <summary>A model with no configuration source: everything is derived or defaulted.</summary>
    public static ConfiguredModel None { get; } = new(new ModelConfigFile(), new Dictionary<string, string>(StringComparer.Ordinal));

    /// <summary>The merged values (null where no source sets a field).</summary>
    public ModelConfigFile Values { get; }

    /// <summary>The source of every field a source set, by configuration key (<c>max_batch_size</c>, <c>input.NAME</c>).</summary>
    public IReadOnlyDictionary<string, string> Origins => _origins;

    /// <summary>The source that set <paramref name="key"/>, or null when none did.</summary>
    public string? OriginOf(string key) => _origins.GetValueOrDefault(key);

    /// <summary>
    /// Reads a model directory's configuration sources in precedence order and merges them; throws
    /// <see cref="ModelConfigException"/> when one is invalid.
    /// </summary>
    public static ConfiguredModel Read(string modelDirectory)
    {
        var layers = new List<ConfigLayer>();
        if (ModelConfigFile.Find(modelDirectory) is { } path)
        {
            var name = Path.GetFileName(path);
            layers.Add(new ConfigLayer(name, ModelConfigFile.Parse(File.ReadAllText(path), name)));
        }
        return Merge(layers);
    }

    /// <summary>Merges <paramref name="layers"/>, the highest precedence first.</summary>
    public static ConfiguredModel Merge(IReadOnlyList<ConfigLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var merged = new ModelConfigFile();
        var origins = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var layer in layers)
        {
            foreach (var field in Fields)
            {
                var value = field.GetValue(layer.Values);
                if (value is null)
                {
                    continue;
                }
                var key = UnderscoredNamingConvention.Instance.Apply(field.Name);
                if (value is List<ModelConfigFile.TensorEntry> tensors)
                {
                    MergeTensors(merged, field, key, tensors, layer.Source, origins);
                }
                else if (field.GetValue(merged) is null)
                {
                    field.SetValue(merged, value);
                    origins[key] = layer.Source;
                }
            }
        }
        return new ConfiguredModel(merged, origins);
    }

    /// <summary>A tensor declared by several sources takes the higher one's declaration; the others add theirs.</summary>
    private static void MergeTensors(
        ModelConfigFile merged, PropertyInfo field, string key, List<ModelConfigFile.TensorEntry> declared, string source, Dictionary<string, string> origins)
    {
        var list = (List<ModelConfigFile.TensorEntry>?)field.GetValue(merged);
        if (list is null)
        {
            list = [];
            field.SetValue(merged, list);
        }
        foreach (var tensor in declared)
        {
            // A nameless entry is kept so the resolver reports it, whichever source it came from.
            if (tensor.Name is null || !list.Exists(t => t.Name == tensor.Name))
            {
                list.Add(tensor);
                if (tensor.Name is not null)
                {
                    origins[$"{key}.{tensor.Name}"] = source;
                }
            }
        }
    }
}
