using System.Globalization;
using InferenceServer.Tensors;

namespace InferenceServer.Configuration;

/// <summary>
/// The tensor interface of a decoder exported with a KV cache (Hugging Face Optimum's <c>text-generation-with-past</c>
/// layout, and its older merged form): inputs <c>input_ids</c>, <c>attention_mask</c>, optionally <c>position_ids</c>
/// and <c>use_cache_branch</c>, and <c>past_key_values.{i}.key/value</c> per layer; outputs <c>logits</c> and
/// <c>present.{i}.key/value</c>. KV tensors are <c>[batch, kv_heads, length, head_size]</c>. Everything here is read
/// from the graph: a model is a KV-cache decoder when its inputs and outputs have these names and shapes.
/// </summary>
public sealed record KvCacheLayout
{
    /// <summary>The token-id input.</summary>
    public const string InputIdsName = "input_ids";

    /// <summary>The 1/0 mask over past plus new tokens.</summary>
    public const string AttentionMaskName = "attention_mask";

    /// <summary>Each new token's position (absent in older exports, which count positions from the past's length).</summary>
    public const string PositionIdsName = "position_ids";

    /// <summary>The merged decoder's switch between its first-step and cached branches (older exports).</summary>
    public const string UseCacheBranchName = "use_cache_branch";

    /// <summary>The logits output.</summary>
    public const string LogitsName = "logits";

    /// <summary>Decoder layers (KV pairs).</summary>
    public required int Layers { get; init; }

    /// <summary>Key/value heads per layer (fewer than the query heads with grouped-query attention).</summary>
    public required int KvHeads { get; init; }

    /// <summary>Elements per head.</summary>
    public required int HeadSize { get; init; }

    /// <summary>The element type of the cache (FP32, FP16 or BF16).</summary>
    public required DataType CacheType { get; init; }

    /// <summary>Whether the graph takes <c>position_ids</c>; without it a run's positions start at the past's length for every row.</summary>
    public required bool HasPositionIds { get; init; }

    /// <summary>Whether the graph takes <c>use_cache_branch</c> (false on a sequence's first run, true after).</summary>
    public required bool HasUseCacheBranch { get; init; }

    /// <summary>
    /// Whether the graph's attention takes each row's length from its count of ones in <c>attention_mask</c>
    /// (onnxruntime-genai's <c>com.microsoft::GroupQueryAttention</c>: seqlens_k = ones - 1, a decode step writes the
    /// row's new key/value at column seqlens_k): rows are batched RIGHT-padded, each row's tokens first. Only a graph
    /// without <c>position_ids</c> and <c>use_cache_branch</c> is one; see <see cref="Recognize"/>.
    /// </summary>
    public bool LengthsFromMask { get; init; }

    /// <summary>Element type of <c>input_ids</c> (INT64 or INT32).</summary>
    public required DataType InputIdsType { get; init; }

    /// <summary>Element type of <c>attention_mask</c> (INT64 or INT32).</summary>
    public required DataType AttentionMaskType { get; init; }

    /// <summary>Element type of <c>position_ids</c> when the graph has it.</summary>
    public DataType PositionIdsType { get; init; } = DataType.Int64;

    /// <summary>Input names of the past keys, by layer.</summary>
    public required IReadOnlyList<string> PastKeys { get; init; }

    /// <summary>Input names of the past values, by layer.</summary>
    public required IReadOnlyList<string> PastValues { get; init; }

    /// <summary>Output names of the present keys, by layer.</summary>
    public required IReadOnlyList<string> PresentKeys { get; init; }

    /// <summary>Output names of the present values, by layer.</summary>
    public required IReadOnlyList<string> PresentValues { get; init; }

    /// <summary>Bytes of cache one token takes over every layer (keys and values).</summary>
    public long BytesPerToken => (long)Layers * 2 * KvHeads * HeadSize * CacheType.ElementSize();

    /// <summary>
    /// Recognises a KV-cache decoder from its inputs and outputs (dims after the batch dimension when
    /// <paramref name="batchStripped"/>, else with it); null when the model is not one. Throws
    /// <see cref="ModelConfigException"/> when it has past inputs but they do not form a cache it can drive.
    /// <paramref name="lengthsFromMask"/>: the model is an onnxruntime-genai export (its version directory has
    /// <c>genai_config.json</c>), whose GroupQueryAttention reads row lengths from the mask; it sets
    /// <see cref="LengthsFromMask"/> only for a graph without <c>position_ids</c> and <c>use_cache_branch</c>.
    /// </summary>
    public static KvCacheLayout? Recognize(IReadOnlyList<TensorConfig> inputs, IReadOnlyList<TensorConfig> outputs, bool batchStripped, bool lengthsFromMask = false)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        var pastNames = inputs.Where(t => t.Name.StartsWith("past_key_values.", StringComparison.Ordinal)).ToList();
        if (pastNames.Count == 0 || !inputs.Any(t => t.Name == InputIdsName))
        {
            return null;
        }
        var layers = pastNames.Count / 2;
        var pastKeys = new string[layers];
        var pastValues = new string[layers];
        var presentKeys = new string[layers];
        var presentValues = new string[layers];
        long kvHeads = 0, headSize = 0;
        var cacheType = DataType.Invalid;
        for (var i = 0; i < layers; i++)
        {
            var layer = i.ToString(CultureInfo.InvariantCulture);
            pastKeys[i] = $"past_key_values.{layer}.key";
            pastValues[i] = $"past_key_values.{layer}.value";
            presentKeys[i] = FindOutput(outputs, $"present.{layer}.key", $"present_key_values.{layer}.key");
            presentValues[i] = FindOutput(outputs, $"present.{layer}.value", $"present_key_values.{layer}.value");
            foreach (var name in (string[])[pastKeys[i], pastValues[i], presentKeys[i], presentValues[i]])
            {
                var tensor = inputs.FirstOrDefault(t => t.Name == name) ?? outputs.FirstOrDefault(t => t.Name == name)
                    ?? throw new ModelConfigException($"the model has {pastNames.Count} past_key_values inputs but no '{name}': a KV-cache decoder needs past_key_values.N.key/value inputs and present.N.key/value outputs for every layer 0..{layers - 1}");
                var dims = batchStripped ? tensor.Dims : tensor.Dims.Skip(1).ToArray();
                if (dims.Length != 3 || dims[0] < 1 || dims[2] < 1)
                {
                    throw new ModelConfigException($"'{name}' has dims [{string.Join(",", tensor.Dims)}]; a KV-cache tensor is [batch, kv_heads, length, head_size] with fixed kv_heads and head_size");
                }
                if (kvHeads == 0)
                {
                    (kvHeads, headSize, cacheType) = (dims[0], dims[2], tensor.DataType);
                }
                else if (dims[0] != kvHeads || dims[2] != headSize || tensor.DataType != cacheType)
                {
                    throw new ModelConfigException($"'{name}' is {tensor.DataType.ConfigName()} [.., {dims[0]}, .., {dims[2]}] but '{pastKeys[0]}' is {cacheType.ConfigName()} [.., {kvHeads}, .., {headSize}]: every KV tensor must have the same heads, head size and type");
                }
            }
        }
        if (pastNames.Count != layers * 2)
        {
            throw new ModelConfigException($"the model has {pastNames.Count} past_key_values inputs; a KV-cache decoder has a key and a value per layer");
        }
        if (cacheType is not (DataType.Fp32 or DataType.Fp16 or DataType.Bf16))
        {
            throw new ModelConfigException($"the KV cache is {cacheType.ConfigName()}; TYPE_FP32, TYPE_FP16 and TYPE_BF16 are supported");
        }
        var ids = inputs.First(t => t.Name == InputIdsName);
        var mask = inputs.FirstOrDefault(t => t.Name == AttentionMaskName)
            ?? throw new ModelConfigException($"the model has past_key_values inputs but no '{AttentionMaskName}' input: the KV-cache engine needs one to batch sequences of different lengths");
        var positions = inputs.FirstOrDefault(t => t.Name == PositionIdsName);
        foreach (var t in positions is null ? [ids, mask] : new[] { ids, mask, positions })
        {
            if (t.DataType is not (DataType.Int64 or DataType.Int32))
            {
                throw new ModelConfigException($"'{t.Name}' is {t.DataType.ConfigName()}; a KV-cache decoder takes it as TYPE_INT64 or TYPE_INT32");
            }
        }
        var known = new HashSet<string>(pastKeys.Concat(pastValues).Append(InputIdsName).Append(AttentionMaskName).Append(PositionIdsName).Append(UseCacheBranchName), StringComparer.Ordinal);
        if (inputs.FirstOrDefault(t => !known.Contains(t.Name)) is { } other)
        {
            throw new ModelConfigException($"the KV-cache decoder has an input '{other.Name}' the engine does not know how to feed (it feeds {InputIdsName}, {AttentionMaskName}, {PositionIdsName}, {UseCacheBranchName} and past_key_values.N.key/value)");
        }
        if (!outputs.Any(t => t.Name == LogitsName))
        {
            throw new ModelConfigException($"the KV-cache decoder has no '{LogitsName}' output");
        }
        return new KvCacheLayout
        {
            Layers = layers,
            KvHeads = (int)kvHeads,
            HeadSize = (int)headSize,
            CacheType = cacheType,
            HasPositionIds = positions is not null,
            HasUseCacheBranch = inputs.Any(t => t.Name == UseCacheBranchName),
            LengthsFromMask = lengthsFromMask && positions is null && !inputs.Any(t => t.Name == UseCacheBranchName),
            InputIdsType = ids.DataType,
            AttentionMaskType = mask.DataType,
            PositionIdsType = positions?.DataType ?? DataType.Int64,
            PastKeys = pastKeys,
            PastValues = pastValues,
            PresentKeys = presentKeys,
            PresentValues = presentValues,
        };
    }

    private static string FindOutput(IReadOnlyList<TensorConfig> outputs, string name, string alternative) =>
        outputs.Any(t => t.Name == name) ? name : outputs.Any(t => t.Name == alternative) ? alternative : name;
}
