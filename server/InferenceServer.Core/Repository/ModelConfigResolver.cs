using InferenceServer.Backends;
using InferenceServer.Tensors;

namespace InferenceServer.Repository;

/// <summary>
/// Completes a model's configuration from the model itself (Triton's auto-complete): undeclared inputs and outputs
/// come from the engine's metadata, declared ones must agree with it, and a variable leading dimension on every
/// input and output makes it the batch dimension.
/// </summary>
public static class ModelConfigResolver
{
    /// <summary>Builds the complete configuration, or throws <see cref="ModelConfigException"/> when the file contradicts the model.</summary>
    public static ModelConfig Resolve(
        string name, ModelConfigFile? file, IModelBackend backend, IBackendModel model, IReadOnlyList<string> instanceDevices, ModelRepositoryOptions defaults)
    {
        var defaultMaxBatchSize = defaults.DefaultMaxBatchSize;
        var signature = model.Signature;
        var allBatchable = signature.Inputs.Concat(signature.Outputs).All(t => t.Dims.Length > 0 && t.Dims[0] == -1);
        var maxBatchSize = file?.MaxBatchSize ?? (allBatchable && signature.Inputs.Count > 0 ? defaultMaxBatchSize : 0);
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
        return new ModelConfig
        {
            Name = name,
            Backend = backend.Name,
            Platform = backend.Platform,
            MaxBatchSize = maxBatchSize,
            Inputs = Merge(ModelConfigFile.ResolveTensors(file?.Input, "input"), signature.Inputs, maxBatchSize, "input"),
            Outputs = Merge(ModelConfigFile.ResolveTensors(file?.Output, "output"), signature.Outputs, maxBatchSize, "output"),
            VersionPolicy = file?.ResolveVersionPolicy() ?? VersionPolicy.Latest(1),
            DefaultModelFilename = file?.DefaultModelFilename ?? backend.DefaultModelFilename,
            InstanceDevices = instanceDevices,
            DynamicBatching = ResolveBatching(file, maxBatchSize),
            Queue = ResolveQueue(file?.DynamicBatching, defaults.DefaultMaxQueueSize),
            ExecutionProvider = model.ExecutionProvider,
            AllowCpuFallback = file?.AllowCpuFallback ?? false,
            Parameters = file?.Parameters ?? new Dictionary<string, string>(),
            CircuitBreaker = Admission.CircuitBreakerOptions.Resolve(file?.CircuitBreaker, name),
        };
    }

    /// <summary>
    /// As Triton's auto-complete: a model whose batch dimension was derived gets dynamic batching with default settings;
    /// a configuration that sets max_batch_size batches only when it has a dynamic_batching section.
    /// </summary>
    private static DynamicBatchingConfig? ResolveBatching(ModelConfigFile? file, int maxBatchSize)
    {
        if (maxBatchSize == 0)
        {
            return null;
        }
        var section = file?.DynamicBatching;
        if (section is null)
        {
            return file?.MaxBatchSize is null ? new DynamicBatchingConfig(0, []) : null;
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
