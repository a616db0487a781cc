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
public sealed record ConfigLayer(string Source, ModelConfigFile Values)
{
    /// <summary>
    /// Whether the values come from a model format's own files (Hugging Face's <c>config.json</c> and the like) rather than
    /// from the model's configuration file. Such a layer's <c>generation</c> keys complete the settings of a model that is
    /// generative (its configuration file has a <c>generation</c> section, or its graph is a KV-cache decoder) but do not
    /// make a model generative: an encoder exported with a tokenizer stays a tensor model.
    /// </summary>
    public bool FromModelFormat { get; init; }
}

/// <summary>
/// A model's configuration sources merged by precedence, field by field: the values of the first source that sets a
/// field win, and each set field remembers its source. Declared inputs and outputs merge by tensor name; the
/// <c>generation</c> section merges key by key (<c>generation.max_model_len</c>, <c>generation.tokenizer</c>, each
/// remembering its source), so a configuration file that sets one generation key keeps the others a format's files give.
/// </summary>
/// <remarks>
/// The precedence, highest first: the model's own configuration file (<c>config.yaml</c>, <c>config.yml</c> or
/// <c>config.json</c>, read once per model by <see cref="Read"/>), then files a model format brings in each version
/// directory (Hugging Face's, read by <see cref="HuggingFace.HuggingFaceFiles"/> and merged beneath per version by
/// <see cref="WithFormatLayers"/>), then what <see cref="ModelConfigResolver"/> derives from the model's graph, then
/// defaults.
/// </remarks>
public sealed class ConfiguredModel
{
    private static readonly PropertyInfo[] Fields = typeof(ModelConfigFile).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanRead && p.CanWrite)
        .ToArray();

    private static readonly PropertyInfo[] GenerationKeys = typeof(ModelConfigFile.GenerationEntry).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanRead && p.CanWrite)
        .ToArray();

    private const string GenerationKey = "generation";

    private readonly Dictionary<string, string> _origins;

    private ConfiguredModel(ModelConfigFile values, Dictionary<string, string> origins, IReadOnlyList<ConfigLayer> layers)
    {
        Values = values;
        _origins = origins;
        Layers = layers;
        DeclaresGeneration = layers.Any(l => !l.FromModelFormat && l.Values.Generation is not null);
    }

    /// <summary>A model with no configuration source: everything is derived or defaulted.</summary>
    public static ConfiguredModel None { get; } = new(new ModelConfigFile(), new Dictionary<string, string>(StringComparer.Ordinal), []);

    /// <summary>The layers merged, the highest precedence first.</summary>
    public IReadOnlyList<ConfigLayer> Layers { get; }

    /// <summary>
    /// Whether a layer that is not <see cref="ConfigLayer.FromModelFormat"/> has a <c>generation</c> section: the model is
    /// served by text generation even when its graph is not a KV-cache decoder.
    /// </summary>
    public bool DeclaresGeneration { get; }

    /// <summary>The merged values (null where no source sets a field).</summary>
    public ModelConfigFile Values { get; }

    /// <summary>
    /// The source of every field a source set, by configuration key (<c>max_batch_size</c>, <c>input.NAME</c>,
    /// <c>generation.KEY</c>; <c>generation</c> itself lists every source of the section, highest first, comma-separated).
    /// </summary>
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

    /// <summary>
    /// This model's configuration with <paramref name="formatLayers"/> (a version directory's format files, the highest
    /// precedence first) merged beneath its own layers.
    /// </summary>
    public ConfiguredModel WithFormatLayers(IReadOnlyList<ConfigLayer> formatLayers)
    {
        ArgumentNullException.ThrowIfNull(formatLayers);
        return formatLayers.Count == 0 ? this : Merge([.. Layers, .. formatLayers]);
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
                else if (value is ModelConfigFile.GenerationEntry generation)
                {
                    merged.Generation ??= new ModelConfigFile.GenerationEntry();
                    MergeGeneration(merged.Generation, generation, layer.Source, origins);
                }
                else if (field.GetValue(merged) is null)
                {
                    field.SetValue(merged, value);
                    origins[key] = layer.Source;
                }
            }
        }
        return new ConfiguredModel(merged, origins, layers.ToArray());
    }

    /// <summary>
    /// The generation keys <paramref name="declared"/> sets that no higher source did; the tokenizer and the chat template
    /// are one key each (a configuration file's tokenizer replaces a format's whole tokenizer, never part of it).
    /// </summary>
    private static void MergeGeneration(ModelConfigFile.GenerationEntry merged, ModelConfigFile.GenerationEntry declared, string source, Dictionary<string, string> origins)
    {
        var contributed = false;
        foreach (var key in GenerationKeys)
        {
            var value = key.GetValue(declared);
            if (value is not null && key.GetValue(merged) is null)
            {
                key.SetValue(merged, value);
                origins[$"{GenerationKey}.{UnderscoredNamingConvention.Instance.Apply(key.Name)}"] = source;
                contributed = true;
            }
        }
        // The section's own entry lists the sources that gave it a key; an empty section (generation: {}) names its file.
        if (!origins.TryGetValue(GenerationKey, out var sources))
        {
            origins[GenerationKey] = source;
        }
        else if (contributed && !sources.Split(", ").Contains(source))
        {
            origins[GenerationKey] = sources + ", " + source;
        }
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
