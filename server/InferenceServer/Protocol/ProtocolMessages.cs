using InferenceServer.Generation;
using System.Globalization;
using System.Reflection;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Repository;
using InferenceServer.Statistics;
using InferenceServer.Tensors;
using Wire = InferenceServer.Protocol;

namespace InferenceServer.Protocol;

/// <summary>
/// Builds the protocol's messages (metadata, Triton model configuration, statistics, repository index) from core
/// objects. gRPC sends them as they are; REST writes the same messages as JSON (<see cref="ProtoJson"/>), so the
/// two protocols cannot drift apart.
/// </summary>
internal static class ProtocolMessages
{
    public const string ServerName = "inference-server";

    public static readonly string ServerVersion =
        typeof(ProtocolMessages).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static readonly string[] Extensions = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"];

    public static ServerMetadataResponse ServerMetadata()
    {
        var response = new ServerMetadataResponse { Name = ServerName, Version = ServerVersion };
        response.Extensions.Add(Extensions);
        return response;
    }

    public static ModelMetadataResponse ModelMetadata(ModelRepository repository, ModelVersion version)
    {
        var config = version.Config!;
        var response = new ModelMetadataResponse { Name = config.Name, Platform = config.Platform };
        response.Versions.Add(repository.ReadyVersions(config.Name).Select(v => v.ToString(CultureInfo.InvariantCulture)));
        if (config.Generation is not null)
        {
            // A generative model seen through the tensor APIs, as Triton's vLLM backend presents one (see TextTensors).
            response.Inputs.Add(new ModelMetadataResponse.Types.TensorMetadata { Name = TextTensors.TextInput, Datatype = "BYTES", Shape = { 1 } });
            response.Outputs.Add(new ModelMetadataResponse.Types.TensorMetadata { Name = TextTensors.TextOutput, Datatype = "BYTES", Shape = { -1 } });
            return response;
        }
        foreach (var input in config.Inputs)
        {
            response.Inputs.Add(TensorMetadata(input, config.MaxBatchSize));
        }
        foreach (var output in config.Outputs)
        {
            response.Outputs.Add(TensorMetadata(output, config.MaxBatchSize));
        }
        return response;
    }

    private static ModelMetadataResponse.Types.TensorMetadata TensorMetadata(TensorConfig tensor, int maxBatchSize)
    {
        var metadata = new ModelMetadataResponse.Types.TensorMetadata { Name = tensor.Name, Datatype = tensor.DataType.Name() };
        if (maxBatchSize > 0)
        {
            metadata.Shape.Add(-1);
        }
        metadata.Shape.Add(tensor.Dims);
        return metadata;
    }

    public static Wire.ModelConfig ModelConfig(Configuration.ModelConfig config)
    {
        var message = new Wire.ModelConfig
        {
            Name = config.Name,
            Platform = config.Platform,
            Backend = config.Backend,
            MaxBatchSize = config.MaxBatchSize,
            DefaultModelFilename = config.DefaultModelFilename,
            VersionPolicy = config.VersionPolicy switch
            {
                VersionPolicy.LatestPolicy latest => new ModelVersionPolicy { Latest = new ModelVersionPolicy.Types.Latest { NumVersions = (uint)latest.Count } },
                VersionPolicy.SpecificPolicy specific => new ModelVersionPolicy { Specific = new ModelVersionPolicy.Types.Specific { Versions = { specific.Versions } } },
                _ => new ModelVersionPolicy { All = new ModelVersionPolicy.Types.All() },
            },
        };
        foreach (var input in config.Inputs)
        {
            message.Input.Add(new ModelInput { Name = input.Name, DataType = ConfigDataType(input.DataType), Dims = { input.Dims }, Optional = input.Optional });
        }
        foreach (var output in config.Outputs)
        {
            message.Output.Add(new ModelOutput { Name = output.Name, DataType = ConfigDataType(output.DataType), Dims = { output.Dims } });
        }
        var onGpu = config.ExecutionProvider.StartsWith("CUDA", StringComparison.Ordinal);
        foreach (var group in config.InstanceDevices.GroupBy(d => d))
        {
            var gpu = DeviceName.IsCuda(group.Key, out var gpuId) && onGpu;
            var instanceGroup = new ModelInstanceGroup
            {
                Name = $"{config.Name}_{group.Key}",
                Count = group.Count(),
                Kind = gpu ? ModelInstanceGroup.Types.Kind.Gpu : ModelInstanceGroup.Types.Kind.Cpu,
            };
            if (gpu)
            {
                instanceGroup.Gpus.Add(gpuId);
            }
            message.InstanceGroup.Add(instanceGroup);
        }
        var queue = config.Queue;
        if (config.DynamicBatching is { } batching)
        {
            message.DynamicBatching = new ModelDynamicBatching
            {
                MaxQueueDelayMicroseconds = (ulong)batching.MaxQueueDelayMicroseconds,
                PreferredBatchSize = { batching.PreferredBatchSizes },
                PriorityLevels = (ulong)queue.PriorityLevels,
                DefaultPriorityLevel = (ulong)queue.DefaultPriorityLevel,
                DefaultQueuePolicy = new ModelQueuePolicy
                {
                    MaxQueueSize = (uint)queue.MaxQueueSize,
                    DefaultTimeoutMicroseconds = (ulong)queue.DefaultTimeoutMicroseconds,
                    AllowTimeoutOverride = queue.AllowTimeoutOverride,
                },
            };
        }
        // Models that do not batch still queue; their queue settings are shown as parameters.
        message.Parameters["max_queue_size"] = new ModelParameter { StringValue = queue.MaxQueueSize.ToString(CultureInfo.InvariantCulture) };
        message.Parameters["priority_levels"] = new ModelParameter { StringValue = queue.PriorityLevels.ToString(CultureInfo.InvariantCulture) };
        foreach (var (key, value) in config.Parameters)
        {
            message.Parameters[key] = new ModelParameter { StringValue = value };
        }
        message.Parameters["device"] = new ModelParameter { StringValue = config.Device };
        message.Parameters["execution_provider"] = new ModelParameter { StringValue = config.ExecutionProvider };
        return message;
    }

    private static Wire.DataType ConfigDataType(Tensors.DataType type) => type switch
    {
        Tensors.DataType.Bool => Wire.DataType.TypeBool,
        Tensors.DataType.UInt8 => Wire.DataType.TypeUint8,
        Tensors.DataType.UInt16 => Wire.DataType.TypeUint16,
        Tensors.DataType.UInt32 => Wire.DataType.TypeUint32,
        Tensors.DataType.UInt64 => Wire.DataType.TypeUint64,
        Tensors.DataType.Int8 => Wire.DataType.TypeInt8,
        Tensors.DataType.Int16 => Wire.DataType.TypeInt16,
        Tensors.DataType.Int32 => Wire.DataType.TypeInt32,
        Tensors.DataType.Int64 => Wire.DataType.TypeInt64,
        Tensors.DataType.Fp16 => Wire.DataType.TypeFp16,
        Tensors.DataType.Bf16 => Wire.DataType.TypeBf16,
        Tensors.DataType.Fp32 => Wire.DataType.TypeFp32,
        Tensors.DataType.Fp64 => Wire.DataType.TypeFp64,
        Tensors.DataType.Bytes => Wire.DataType.TypeString,
        _ => Wire.DataType.TypeInvalid,
    };

    /// <summary>Statistics of the versions matching <paramref name="name"/> and <paramref name="version"/> (empty: all).</summary>
    public static ModelStatisticsResponse Statistics(ModelRepository repository, string name, string version)
    {
        var response = new ModelStatisticsResponse();
        IEnumerable<ModelVersion> versions;
        if (string.IsNullOrEmpty(name))
        {
            versions = repository.Versions().Where(v => v.State == ModelState.Ready);
        }
        else if (string.IsNullOrEmpty(version))
        {
            repository.Select(name, "");
            versions = repository.Versions(name).Where(v => v.Version > 0 && !v.IsUnloaded);
        }
        else
        {
            versions = [repository.Select(name, version)];
        }
        foreach (var v in versions)
        {
            response.ModelStats.Add(ModelStatistics(v));
        }
        return response;
    }

    private static Wire.ModelStatistics ModelStatistics(ModelVersion version)
    {
        var s = version.Statistics;
        var message = new Wire.ModelStatistics
        {
            Name = version.Name,
            Version = version.Version.ToString(CultureInfo.InvariantCulture),
            LastInference = (ulong)s.LastInferenceMs,
            InferenceCount = (ulong)s.InferenceCount,
            ExecutionCount = (ulong)s.ExecutionCount,
            InferenceStats = new InferStatistics
            {
                Success = Duration(s.Success),
                Fail = Duration(s.Fail),
                Queue = Duration(s.Queue),
                ComputeInput = Duration(s.ComputeInput),
                ComputeInfer = Duration(s.ComputeInfer),
                ComputeOutput = Duration(s.ComputeOutput),
                CacheHit = new StatisticDuration(),
                CacheMiss = new StatisticDuration(),
            },
        };
        foreach (var (size, batch) in s.Batches.OrderBy(kv => kv.Key))
        {
            message.BatchStats.Add(new InferBatchStatistics
            {
                BatchSize = (ulong)size,
                ComputeInput = Duration(batch.ComputeInput),
                ComputeInfer = Duration(batch.ComputeInfer),
                ComputeOutput = Duration(batch.ComputeOutput),
            });
        }
        return message;
    }

    private static StatisticDuration Duration(DurationStatistic d) => new() { Count = (ulong)d.Count, Ns = (ulong)d.Nanoseconds };

    public static RepositoryIndexResponse Index(ModelRepository repository, bool readyOnly)
    {
        var response = new RepositoryIndexResponse();
        foreach (var row in repository.Index(readyOnly))
        {
            response.Models.Add(new RepositoryIndexResponse.Types.ModelIndex { Name = row.Name, Version = row.Version, State = row.State, Reason = row.Reason });
        }
        return response;
    }
}
