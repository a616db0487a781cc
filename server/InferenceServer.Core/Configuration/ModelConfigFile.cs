using InferenceServer.Tensors;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace InferenceServer.Configuration;

/// <summary>
/// <c>config.yaml</c> (or <c>config.json</c>, or <c>config.yml</c>) beside a model's version directories, as written:
/// every field optional. See the README's "Model repository" section for the schema.
/// </summary>
public sealed class ModelConfigFile
{
    /// <summary>The file names looked for, in order.</summary>
    public static readonly string[] FileNames = ["config.yaml", "config.yml", "config.json"];

    /// <summary>Must equal the directory name when given.</summary>
    public string? Name { get; set; }

    /// <summary>"onnxruntime" (the only backend of tensor models so far).</summary>
    public string? Backend { get; set; }

    /// <summary>Triton's platform string; "onnxruntime_onnx" is accepted.</summary>
    public string? Platform { get; set; }

    /// <summary>0 for no batch dimension; omitted to derive it from the model.</summary>
    public int? MaxBatchSize { get; set; }

    /// <summary>Inputs to declare or check; undeclared ones are taken from the model.</summary>
    public List<TensorEntry>? Input { get; set; }

    /// <summary>Outputs to declare or check; undeclared ones are taken from the model.</summary>
    public List<TensorEntry>? Output { get; set; }

    /// <summary>latest / all / specific.</summary>
    public VersionPolicyEntry? VersionPolicy { get; set; }

    /// <summary>
    /// The model file inside each version directory: a file name or one folder and a file name (<c>onnx/model_fp16.onnx</c>).
    /// Default: the backend's file; for ONNX the first found of <see cref="HuggingFace.OptimumModelFiles.Onnx"/>.
    /// </summary>
    public string? DefaultModelFilename { get; set; }

    /// <summary>"cpu" or "cuda:N"; default: the server's default device.</summary>
    public string? Device { get; set; }

    /// <summary>Run on the CPU when the device asked for is not available in this build.</summary>
    public bool? AllowCpuFallback { get; set; }

    /// <summary>Backend parameters, e.g. intra_op_num_threads.</summary>
    public Dictionary<string, string>? Parameters { get; set; }

    /// <summary>The scheduler's queue and batching settings (Triton's names); see <see cref="DynamicBatchingEntry"/>.</summary>
    public DynamicBatchingEntry? DynamicBatching { get; set; }

    /// <summary>Engine instances and the devices they run on (Triton's names).</summary>
    public List<InstanceGroupEntry>? InstanceGroup { get; set; }

    /// <summary>Present for autoregressive language models: served by text generation with continuous batching.</summary>
    public GenerationEntry? Generation { get; set; }

    /// <summary>Samples run on every engine instance before the model reports ready (Triton's model_warmup).</summary>
    public List<WarmupEntry>? ModelWarmup { get; set; }

    /// <summary>A circuit breaker around the model's engine, with an optional fallback model; see <see cref="CircuitBreakerEntry"/>.</summary>
    public CircuitBreakerEntry? CircuitBreaker { get; set; }

    /// <summary>
    /// circuit_breaker: Resilience4j's count-based settings (see the README's "Circuit breaker" section); resolved and
    /// checked by <see cref="CircuitBreakerOptions.Resolve"/>.
    /// </summary>
    public sealed class CircuitBreakerEntry
    {
        /// <summary>Failure rate (percent) that opens the breaker (default 50).</summary>
        public double? FailureRateThreshold { get; set; }

        /// <summary>Slow-call rate (percent) that opens the breaker (default 100).</summary>
        public double? SlowCallRateThreshold { get; set; }

        /// <summary>A call longer than this is slow (default 60000).</summary>
        public long? SlowCallDurationMs { get; set; }

        /// <summary>The last calls the rates are computed over (default 100).</summary>
        public int? SlidingWindowSize { get; set; }

        /// <summary>Calls needed before the rates are judged (default: 100, at most the window).</summary>
        public int? MinimumNumberOfCalls { get; set; }

        /// <summary>How long the breaker stays open (default 60000).</summary>
        public long? OpenDurationMs { get; set; }

        /// <summary>Trial calls while half-open (default 10).</summary>
        public int? HalfOpenCalls { get; set; }

        /// <summary>The model that serves requests while the breaker is open (default: none, 503).</summary>
        public string? FallbackModel { get; set; }
    }

    /// <summary>
    /// One warmup sample: its inputs, the batch it runs as and how many times. See the README's "Warmup" section;
    /// checked against the resolved configuration when the model loads.
    /// </summary>
    public sealed class WarmupEntry
    {
        /// <summary>The sample's name, as reasons and logs name it.</summary>
        public string? Name { get; set; }

        /// <summary>Rows of the batch dimension for a model with max_batch_size &gt; 0 (0 or omitted: 1).</summary>
        public int? BatchSize { get; set; }

        /// <summary>Each input of the model by name, with its data.</summary>
        public Dictionary<string, WarmupInputEntry>? Inputs { get; set; }

        /// <summary>Executions of this sample on each instance (0 or omitted: 1, as Triton).</summary>
        public int? Count { get; set; }
    }

    /// <summary>One input of a warmup sample: its type, dims (without the batch dimension) and exactly one data source.</summary>
    public sealed class WarmupInputEntry
    {
        /// <summary>Must equal the input's data type ("TYPE_FP32" or "FP32").</summary>
        public string? DataType { get; set; }

        /// <summary>Concrete dims without the batch dimension, matching the input's (-1 there matches any size).</summary>
        public List<long>? Dims { get; set; }

        /// <summary>Every element zero (BYTES: empty strings).</summary>
        public bool? ZeroData { get; set; }

        /// <summary>Random elements (see the README for the ranges).</summary>
        public bool? RandomData { get; set; }

        /// <summary>A file in the model's <c>warmup/</c> directory holding one row of raw little-endian elements.</summary>
        public string? InputDataFile { get; set; }
    }

    /// <summary>
    /// generation: how a language model's token-in, logits-out network becomes a text generator. See the README's
    /// "Generative models" section.
    /// </summary>
    public sealed class GenerationEntry
    {
        /// <summary>The tokenizer (a character vocabulary, or BPE / SentencePiece / tiktoken / tokenizer.json files).</summary>
        public TokenizerSpec? Tokenizer { get; set; }

        /// <summary>How chat messages become the prompt; default: each message's content on its own line.</summary>
        public ChatTemplateSpec? ChatTemplate { get; set; }

        /// <summary>Tokens the model sees per step (default: the token input's fixed length); older tokens slide out.</summary>
        public int? ContextWindow { get; set; }

        /// <summary>Token id that fills the window's left when the context is shorter (default 0).</summary>
        public long? PadTokenId { get; set; }

        /// <summary>The input that takes token ids (default: the model's only input).</summary>
        public string? InputIds { get; set; }

        /// <summary>The output holding next-token logits, [batch, window, vocab] or [batch, vocab] (default: the only output).</summary>
        public string? Logits { get; set; }

        /// <summary>Most sequences stepped together per instance (default: max_batch_size).</summary>
        public int? MaxRunningSequences { get; set; }

        /// <summary>Most requests waiting for a running slot; beyond it 429 / RESOURCE_EXHAUSTED (default 256).</summary>
        public int? MaxWaitingSequences { get; set; }

        /// <summary>max_tokens of requests that set none (default 256).</summary>
        public int? DefaultMaxTokens { get; set; }

        /// <summary>Largest max_tokens a request may ask for (default 4096).</summary>
        public int? MaxTokensLimit { get; set; }

        /// <summary>
        /// A KV-cache decoder's context length: prompt plus generated tokens of one sequence (default: Hugging Face
        /// <c>max_position_embeddings</c>, else 2048). vLLM's <c>max_model_len</c>.
        /// </summary>
        public int? MaxModelLen { get; set; }

        /// <summary>Bytes of KV cache each engine instance of a KV-cache decoder may hold (default 1 GiB; per instance).</summary>
        public long? KvCacheBytes { get; set; }

        /// <summary>
        /// A KV-cache decoder's token budget per iteration and instance (vLLM's <c>max_num_batched_tokens</c>): one token
        /// per running sequence, and the rest for a chunk of the prompt being read (chunked prefill). Default 512, or
        /// twice max_running_sequences when that is more; it must exceed max_running_sequences.
        /// </summary>
        public int? MaxNumBatchedTokens { get; set; }

        /// <summary>Whether a KV-cache decoder keeps the KV of prompts it has read and reuses it for prompts that start the same way (vLLM's <c>enable_prefix_caching</c>; default true).</summary>
        public bool? EnablePrefixCaching { get; set; }

        /// <summary>Bytes each engine instance may hold of cached prefixes (default 256 MiB, taken as prefixes are stored).</summary>
        public long? PrefixCacheBytes { get; set; }

        /// <summary>Token ids that end a sequence besides the tokenizer's end-of-sequence token (Hugging Face's list of <c>eos_token_id</c>s).</summary>
        public List<int>? StopTokenIds { get; set; }

        /// <summary>A window decoder's attention-mask input (default: an input named <c>attention_mask</c> when the model has one).</summary>
        public string? AttentionMask { get; set; }
    }

    /// <summary>
    /// dynamic_batching: for a model with a batch dimension, requests are combined into batches; for any model, the
    /// queue's size, priorities and timeouts.
    /// </summary>
    public sealed class DynamicBatchingEntry
    {
        /// <summary>How long the first request of a batch may wait for more (default 0: batch what is queued).</summary>
        public long? MaxQueueDelayMicroseconds { get; set; }

        /// <summary>Batch sizes to dispatch at once when they can be formed.</summary>
        public List<int>? PreferredBatchSize { get; set; }

        /// <summary>Number of priority levels (default 0: one level).</summary>
        public int? PriorityLevels { get; set; }

        /// <summary>Level of requests that name none (1 is highest).</summary>
        public int? DefaultPriorityLevel { get; set; }

        /// <summary>Queue limits and timeouts.</summary>
        public QueuePolicyEntry? DefaultQueuePolicy { get; set; }
    }

    /// <summary>default_queue_policy: queue bound and request timeout.</summary>
    public sealed class QueuePolicyEntry
    {
        /// <summary>Most requests waiting (default: the server's --default-max-queue-size); more are rejected at once.</summary>
        public int? MaxQueueSize { get; set; }

        /// <summary>Deadline for requests that carry none (0: none).</summary>
        public long? DefaultTimeoutMicroseconds { get; set; }

        /// <summary>Whether a request's own timeout parameter may replace the default (Triton's flag; requests may always shorten it).</summary>
        public bool? AllowTimeoutOverride { get; set; }
    }

    /// <summary>One instance group: count instances of kind KIND_CPU or KIND_GPU (count per listed GPU).</summary>
    public sealed class InstanceGroupEntry
    {
        /// <summary>Instances (per GPU for KIND_GPU); default 1.</summary>
        public int? Count { get; set; }

        /// <summary>KIND_CPU, KIND_GPU or KIND_AUTO (the model's device).</summary>
        public string? Kind { get; set; }

        /// <summary>GPU ids for KIND_GPU (default [0]).</summary>
        public List<int>? Gpus { get; set; }
    }

    /// <summary>One declared input or output.</summary>
    public sealed class TensorEntry
    {
        /// <summary>The tensor's name in the model.</summary>
        public string? Name { get; set; }

        /// <summary>"FP32" or "TYPE_FP32" (BYTES is also "TYPE_STRING").</summary>
        public string? DataType { get; set; }

        /// <summary>Dimensions without the batch dimension; -1 for variable.</summary>
        public List<long>? Dims { get; set; }

        /// <summary>Whether a request may leave this input out.</summary>
        public bool? Optional { get; set; }
    }

    /// <summary>Exactly one of the three policies.</summary>
    public sealed class VersionPolicyEntry
    {
        /// <summary>Serve the highest num_versions versions.</summary>
        public LatestEntry? Latest { get; set; }

        /// <summary>Serve every version (an empty mapping: <c>all: {}</c>).</summary>
        public Dictionary<string, object>? All { get; set; }

        /// <summary>Serve the listed versions.</summary>
        public SpecificEntry? Specific { get; set; }
    }

    /// <summary>latest: { num_versions: N }.</summary>
    public sealed class LatestEntry
    {
        /// <summary>How many of the highest versions to serve.</summary>
        public int? NumVersions { get; set; }
    }

    /// <summary>specific: { versions: [...] }.</summary>
    public sealed class SpecificEntry
    {
        /// <summary>The versions to serve.</summary>
        public List<long>? Versions { get; set; }
    }

    private static readonly IDeserializer Deserializer = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .Build();

    /// <summary>The path of the model's configuration file (the first of <see cref="FileNames"/> present), or null.</summary>
    public static string? Find(string modelDirectory)
    {
        foreach (var fileName in FileNames)
        {
            var path = Path.Combine(modelDirectory, fileName);
            if (File.Exists(path))
            {
                return path;
            }
        }
        return null;
    }

    /// <summary>Parses configuration text (YAML, or JSON, which YAML reads as well).</summary>
    public static ModelConfigFile Parse(string text, string source = "config")
    {
        try
        {
            return Deserializer.Deserialize<ModelConfigFile?>(text) ?? new ModelConfigFile();
        }
        catch (YamlException e)
        {
            throw new ModelConfigException($"{source}: {e.Message} (line {e.Start.Line}, column {e.Start.Column})");
        }
    }

    /// <summary>The version policy this file asks for (default: the latest version).</summary>
    public VersionPolicy ResolveVersionPolicy()
    {
        if (VersionPolicy is null)
        {
            return Configuration.VersionPolicy.Latest(1);
        }
        var chosen = (VersionPolicy.Latest is null ? 0 : 1) + (VersionPolicy.All is null ? 0 : 1) + (VersionPolicy.Specific is null ? 0 : 1);
        if (chosen != 1)
        {
            throw new ModelConfigException("version_policy must name exactly one of latest, all, specific");
        }
        if (VersionPolicy.Latest is { } latest)
        {
            var n = latest.NumVersions ?? 1;
            return n >= 1 ? Configuration.VersionPolicy.Latest(n) : throw new ModelConfigException("version_policy.latest.num_versions must be at least 1");
        }
        if (VersionPolicy.Specific is { } specific)
        {
            if (specific.Versions is not { Count: > 0 } versions || versions.Any(v => v < 1))
            {
                throw new ModelConfigException("version_policy.specific.versions must list positive version numbers");
            }
            return Configuration.VersionPolicy.Specific(versions);
        }
        return Configuration.VersionPolicy.All;
    }

    /// <summary>The device of each engine instance the instance groups ask for (at least one).</summary>
    public IReadOnlyList<string> ResolveInstanceDevices(string defaultDevice)
    {
        var device = Device ?? defaultDevice;
        if (InstanceGroup is not { Count: > 0 } groups)
        {
            return [device];
        }
        var devices = new List<string>();
        foreach (var group in groups)
        {
            var count = group.Count ?? 1;
            if (count is < 1 or > 64)
            {
                throw new ModelConfigException($"instance_group count must be between 1 and 64, not {count}");
            }
            switch (group.Kind ?? "KIND_AUTO")
            {
                case "KIND_CPU":
                    devices.AddRange(Enumerable.Repeat("cpu", count));
                    break;
                case "KIND_GPU":
                    foreach (var gpu in group.Gpus is { Count: > 0 } gpus ? gpus : [0])
                    {
                        devices.AddRange(Enumerable.Repeat($"cuda:{gpu}", count));
                    }
                    break;
                case "KIND_AUTO":
                    devices.AddRange(Enumerable.Repeat(device, count));
                    break;
                default:
                    throw new ModelConfigException($"instance_group kind must be KIND_CPU, KIND_GPU or KIND_AUTO, not '{group.Kind}'");
            }
        }
        return devices;
    }

    /// <summary>Converts the declared tensors, checking names and types.</summary>
    internal static List<TensorConfig> ResolveTensors(List<TensorEntry>? entries, string kind)
    {
        var result = new List<TensorConfig>();
        foreach (var e in entries ?? [])
        {
            if (string.IsNullOrEmpty(e.Name))
            {
                throw new ModelConfigException($"every {kind} needs a name");
            }
            if (e.DataType is null || !DataTypes.TryParse(e.DataType, out var type))
            {
                throw new ModelConfigException($"{kind} '{e.Name}' has unknown data_type '{e.DataType}'");
            }
            if (e.Dims is null || e.Dims.Any(d => d < -1))
            {
                throw new ModelConfigException($"{kind} '{e.Name}' needs dims (each -1 or a size)");
            }
            if (result.Any(r => r.Name == e.Name))
            {
                throw new ModelConfigException($"{kind} '{e.Name}' is declared twice");
            }
            result.Add(new TensorConfig(e.Name, type, e.Dims.ToArray(), e.Optional ?? false));
        }
        return result;
    }
}

/// <summary>A model's configuration is invalid or does not match the model; the model becomes UNAVAILABLE with this reason.</summary>
public sealed class ModelConfigException(string message) : Exception(message);
