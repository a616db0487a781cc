using InferenceServer.Tensors;

namespace InferenceServer.Configuration;

/// <summary>The backend that loaded a model, as its configuration names it.</summary>
/// <param name="Name">The backend's name ("onnxruntime").</param>
/// <param name="Platform">Triton's platform string ("onnxruntime_onnx").</param>
/// <param name="DefaultModelFilename">The model file it looks for in a version directory ("model.onnx").</param>
public sealed record BackendIdentity(string Name, string Platform, string DefaultModelFilename)
{
    /// <summary>
    /// The model file found in the version directory when the configuration names none and it is not
    /// <see cref="DefaultModelFilename"/> (e.g. <c>onnx/model.onnx</c> of a hub export); null otherwise.
    /// </summary>
    public string? FoundModelFilename { get; init; }
}

/// <summary>The server-wide defaults a configuration falls back to.</summary>
/// <param name="MaxBatchSize">max_batch_size of a model whose batch dimension is derived.</param>
/// <param name="MaxQueueSize">The queue bound of a model that sets none.</param>
public sealed record ConfigDefaults(int MaxBatchSize, int MaxQueueSize);

/// <summary>
/// Completes a model's configuration from the model itself (Triton's auto-complete): undeclared inputs and outputs
/// come from the engine's metadata, declared ones must agree with it, and a variable leading dimension on every
/// input and output makes it the batch dimension.
/// </summary>
/// <remarks>
/// One precedence for every value, highest first: the configuration sources merged by <see cref="ConfiguredModel"/>
/// (the model's <c>config.yaml</c>/<c>.yml</c>/<c>.json</c>, then a model format's own files), then what is derived
/// from the graph (<see cref="ConfigSources.Model"/>), then defaults (<see cref="ConfigSources.Default"/>). The
/// result's <see cref="ModelConfig.Provenance"/> records which one gave each value.
/// </remarks>
public static class ModelConfigResolver
{
    /// <summary>Builds the complete configuration, or throws <see cref="ModelConfigException"/> when a source contradicts the model.</summary>
    public static ModelConfig Resolve(
        string name, ConfiguredModel configured, BackendIdentity backend, ModelSignature signature, string executionProvider,
        IReadOnlyList<string> instanceDevices, ConfigDefaults defaults)
    {
        ArgumentNullException.ThrowIfNull(configured);
        ArgumentNullException.ThrowIfNull(signature);
        var file = configured.Values;
        var provenance = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string From(string key, string fallback) => provenance[key] = configured.OriginOf(key) ?? fallback;

        var allBatchable = signature.Inputs.Concat(signature.Outputs).All(t => t.Dims.Length > 0 && t.Dims[0] == -1);
        var maxBatchSize = file.MaxBatchSize ?? (allBatchable && signature.Inputs.Count > 0 ? defaults.MaxBatchSize : 0);
        From("max_batch_size", ConfigSources.Model);
        if (maxBatchSize < 0)
        {
            throw new ModelConfigException("max_batch_size must not be negative");
        }
        if (maxBatchSize > 0 && !allBatchable)
        {
            var fixedOne = signature.Inputs.Concat(signature.Outputs).First(t => t.Dims.Length == 0 || t.Dims[0] != -1);
            throw new ModelConfigException(
                $"max_batch_size {maxBatchSize} needs a variable leading (batch) dimension on every input and output, but '{fixedOne.Name}' has shape [{string.Join(",", fixedOne.Dims)}]");
        }
        var inputs = Merge(ModelConfigFile.ResolveTensors(file.Input, "input"), signature.Inputs, maxBatchSize, "input");
        var outputs = Merge(ModelConfigFile.ResolveTensors(file.Output, "output"), signature.Outputs, maxBatchSize, "output");
        foreach (var t in inputs)
        {
            From("input." + t.Name, ConfigSources.Model);
        }
        foreach (var t in outputs)
        {
            From("output." + t.Name, ConfigSources.Model);
        }
        // Either of backend and platform names the other; with neither, the version directory's model file did.
        provenance["backend"] = configured.OriginOf("backend") ?? configured.OriginOf("platform") ?? ConfigSources.Model;
        provenance["platform"] = configured.OriginOf("platform") ?? configured.OriginOf("backend") ?? ConfigSources.Model;
        From("version_policy", ConfigSources.Default);
        From("default_model_filename", backend.FoundModelFilename is null ? ConfigSources.Default : ConfigSources.Model);
        From(configured.OriginOf("instance_group") is null ? "device" : "instance_group", ConfigSources.Default);
        var batching = ResolveBatching(file, maxBatchSize);
        From("dynamic_batching", batching is not null && file.DynamicBatching is null ? ConfigSources.Model : ConfigSources.Default);
        foreach (var key in (string[])["allow_cpu_fallback", "parameters", "circuit_breaker", "model_warmup"])
        {
            if (configured.OriginOf(key) is { } origin)
            {
                provenance[key] = origin;
            }
        }
        // A format's generation keys (Hugging Face's files) apply only to a generative model: one whose configuration
        // file declares generation, or a KV-cache decoder.
        var generation = configured.DeclaresGeneration || KvCacheLayout.Recognize(inputs, outputs, maxBatchSize > 0) is not null
            ? GenerationSettings.Resolve(file.Generation, maxBatchSize, inputs, outputs, IsGenAiExport(configured))
            : null;
        if (generation is not null)
        {
            foreach (var (key, origin) in configured.Origins)
            {
                if (key == "generation" || key.StartsWith("generation.", StringComparison.Ordinal))
                {
                    provenance[key] = origin;
                }
            }
            if (generation.KvCache is not null)
            {
                // The cache's shape is the graph's; the context and budget fall back to defaults when no source sets them.
                provenance["generation.kv_cache"] = ConfigSources.Model;
                foreach (var key in (string[])["generation.max_model_len", "generation.kv_cache_bytes", "generation.max_running_sequences", "generation.max_num_batched_tokens", "generation.enable_prefix_caching", "generation.prefix_cache_bytes"])
                {
                    provenance.TryAdd(key, ConfigSources.Default);
                }
            }
        }
        return new ModelConfig
        {
            Name = name,
            Backend = backend.Name,
            Platform = backend.Platform,
            MaxBatchSize = maxBatchSize,
            Inputs = inputs,
            Outputs = outputs,
            VersionPolicy = file.ResolveVersionPolicy(),
            DefaultModelFilename = file.DefaultModelFilename ?? backend.FoundModelFilename ?? backend.DefaultModelFilename,
            InstanceDevices = instanceDevices,
            DynamicBatching = batching,
            Queue = ResolveQueue(file.DynamicBatching, defaults.MaxQueueSize),
            ExecutionProvider = executionProvider,
            AllowCpuFallback = file.AllowCpuFallback ?? false,
            Parameters = file.Parameters ?? new Dictionary<string, string>(),
            CircuitBreaker = CircuitBreakerOptions.Resolve(file.CircuitBreaker, name),
            Generation = generation,
            Provenance = provenance,
        };
    }

    /// <summary>
    /// Whether the version directory holds onnxruntime-genai's <c>genai_config.json</c> (its layer is among the format
    /// layers): the graph is the genai builder's, whose GroupQueryAttention takes each row's length from the mask.
    /// ONNX Runtime's metadata shows inputs and outputs, not operators, so the format's own file is what tells.
    /// </summary>
    private static bool IsGenAiExport(ConfiguredModel configured) =>
        configured.Layers.Any(l => l.FromModelFormat && l.Source == HuggingFace.HuggingFaceFiles.GenAiConfigFileName);

    /// <summary>
    /// As Triton's auto-complete: a model whose batch dimension was derived gets dynamic batching with default settings;
    /// a configuration that sets max_batch_size batches only when it has a dynamic_batching section.
    /// </summary>
    private static DynamicBatchingConfig? ResolveBatching(ModelConfigFile file, int maxBatchSize)
    {
        if (maxBatchSize == 0)
        {
            return null;
        }
        var section = file.DynamicBatching;
        if (section is null)
        {
            return file.MaxBatchSize is null ? new DynamicBatchingConfig(0, []) : null;
        }
        var delay = section.MaxQueueDelayMicroseconds ?? 0;
        if (delay < 0)
        {
            throw new ModelConfigException("dynamic_batching.max_queue_delay_microseconds must not be negative");
        }
        var preferred = section.PreferredBatchSize ?? [];
        if (preferred.Any(p => p < 1 || p > maxBatchSize))
        {
            throw new ModelConfigException($"dynamic_batching.preferred_batch_size values must be between 1 and max_batch_size {maxBatchSize}");
        }
        return new DynamicBatchingConfig(delay, preferred.Distinct().Order().ToArray());
    }

    private static QueueConfig ResolveQueue(ModelConfigFile.DynamicBatchingEntry? section, int defaultMaxQueueSize)
    {
        var levels = Math.Max(1, section?.PriorityLevels ?? 0);
        var defaultLevel = section?.DefaultPriorityLevel is int d and > 0 ? d : 1;
        if (defaultLevel > levels)
        {
            throw new ModelConfigException($"dynamic_batching.default_priority_level {defaultLevel} is above priority_levels {levels}");
        }
        var policy = section?.DefaultQueuePolicy;
        var size = policy?.MaxQueueSize ?? defaultMaxQueueSize;
        if (size < 1)
        {
            throw new ModelConfigException("default_queue_policy.max_queue_size must be at least 1 (the queue is always bounded)");
        }
        var timeout = policy?.DefaultTimeoutMicroseconds ?? 0;
        if (timeout < 0)
        {
            throw new ModelConfigException("default_queue_policy.default_timeout_microseconds must not be negative");
        }
        return new QueueConfig
        {
            MaxQueueSize = size,
            PriorityLevels = levels,
            DefaultPriorityLevel = defaultLevel,
            DefaultTimeoutMicroseconds = timeout,
            AllowTimeoutOverride = policy?.AllowTimeoutOverride ?? false,
        };
    }

    private static List<TensorConfig> Merge(List<TensorConfig> declared, IReadOnlyList<TensorConfig> actual, int maxBatchSize, string kind)
    {
        foreach (var d in declared)
        {
            if (!actual.Any(a => a.Name == d.Name))
            {
                throw new ModelConfigException($"{kind} '{d.Name}' is declared in the configuration but the model has no such {kind} (it has: {string.Join(", ", actual.Select(a => a.Name))})");
            }
        }
        var result = new List<TensorConfig>(actual.Count);
        foreach (var a in actual)
        {
            var modelDims = maxBatchSize > 0 ? a.Dims[1..] : a.Dims;
            var d = declared.FirstOrDefault(x => x.Name == a.Name);
            if (d is null)
            {
                result.Add(a with { Dims = modelDims });
                continue;
            }
            if (d.DataType != a.DataType)
            {
                throw new ModelConfigException($"{kind} '{a.Name}' is declared {d.DataType.ConfigName()} but the model has {a.DataType.ConfigName()}");
            }
            if (!Compatible(d.Dims, modelDims))
            {
                throw new ModelConfigException(
                    $"{kind} '{a.Name}' is declared with dims [{string.Join(",", d.Dims)}] but the model has [{string.Join(",", modelDims)}]{(maxBatchSize > 0 ? " after the batch dimension" : "")}");
            }
            result.Add(d);
        }
        return result;
    }

    private static bool Compatible(long[] declared, long[] model)
    {
        if (model.Length == 0 && declared.Length > 0)
        {
            // Some exporters leave the rank unknown; trust the declaration.
            return true;
        }
        if (declared.Length != model.Length)
        {
            return false;
        }
        for (var i = 0; i < declared.Length; i++)
        {
            if (model[i] != -1 && declared[i] != -1 && declared[i] != model[i])
            {
                return false;
            }
        }
        return true;
    }
}
