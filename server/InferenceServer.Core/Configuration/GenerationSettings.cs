using InferenceServer.Tensors;

namespace InferenceServer.Configuration;

/// <summary>
/// A generative model's resolved <c>generation</c> section: which tensors carry token ids and logits, how the tokenizer
/// and chat template are specified, and the continuous batcher's bounds. Plain values: the tokenizer itself is built
/// from <see cref="Tokenizer"/> when the model loads (Generation's <c>GenerationModel</c>).
/// </summary>
public sealed record GenerationSettings
{
    /// <summary>Which tokenizer, and its files relative to the model directory.</summary>
    public required TokenizerSpec Tokenizer { get; init; }

    /// <summary>How chat messages become the prompt; null: each message's content on its own line.</summary>
    public ChatTemplateSpec? ChatTemplate { get; init; }

    /// <summary>Tokens fed per step: the last ones of the sequence, left-padded when there are fewer.</summary>
    public required int ContextWindow { get; init; }

    /// <summary>The id that pads the window.</summary>
    public long PadTokenId { get; init; }

    /// <summary>The model input that takes the ids.</summary>
    public required string InputName { get; init; }

    /// <summary>Its element type (INT64 or INT32).</summary>
    public DataType InputType { get; init; } = DataType.Int64;

    /// <summary>The model output holding logits.</summary>
    public required string LogitsName { get; init; }

    /// <summary>Whether the logits output has a position axis ([batch, window, vocab]) or not ([batch, vocab]).</summary>
    public bool LogitsPerPosition { get; init; }

    /// <summary>The logits' last dimension (may exceed the tokenizer's vocabulary; the extra ids are never sampled).</summary>
    public required int LogitsWidth { get; init; }

    /// <summary>Most sequences stepped together by one instance.</summary>
    public required int MaxRunningSequences { get; init; }

    /// <summary>Most requests waiting for a running slot.</summary>
    public required int MaxWaitingSequences { get; init; }

    /// <summary>max_tokens when a request sets none.</summary>
    public int DefaultMaxTokens { get; init; } = 256;

    /// <summary>Largest max_tokens accepted.</summary>
    public int MaxTokensLimit { get; init; } = 4096;

    /// <summary>The element type of the logits (FP32, FP16 or BF16); the sampler reads them as FP32.</summary>
    public DataType LogitsType { get; init; } = DataType.Fp32;

    /// <summary>A window decoder's attention-mask input (1 for tokens, 0 for the padding), when the model has one.</summary>
    public string? AttentionMaskName { get; init; }

    /// <summary>Its element type (INT64 or INT32).</summary>
    public DataType AttentionMaskType { get; init; } = DataType.Int64;

    /// <summary>The KV-cache interface when the model is a KV-cache decoder; null for a window decoder.</summary>
    public KvCacheLayout? KvCache { get; init; }

    /// <summary>A KV-cache decoder's context length (prompt plus generated tokens); null for a window decoder, which slides.</summary>
    public int? MaxModelLen { get; init; }

    /// <summary>The KV-cache byte budget of each engine instance (KV-cache decoders).</summary>
    public long KvCacheBytes { get; init; } = DefaultKvCacheBytes;

    /// <summary>
    /// Tokens one iteration of a KV-cache decoder computes per instance (vLLM's <c>max_num_batched_tokens</c>): one per
    /// running sequence, and what is left for a chunk of a joining sequence's prompt (chunked prefill), so a long
    /// prompt is read over several iterations while the running sequences keep getting a token each.
    /// </summary>
    public int MaxNumBatchedTokens { get; init; } = DefaultMaxNumBatchedTokens;

    /// <summary>Whether the KV of prompts read is kept and reused by prompts that start with the same tokens (prefix caching).</summary>
    public bool EnablePrefixCaching { get; init; } = true;

    /// <summary>Bytes of cached prefixes each engine instance may hold (taken as prefixes are stored).</summary>
    public long PrefixCacheBytes { get; init; } = DefaultPrefixCacheBytes;

    /// <summary><see cref="MaxNumBatchedTokens"/> when the configuration sets none (or twice max_running_sequences when that is more).</summary>
    public const int DefaultMaxNumBatchedTokens = 512;

    /// <summary><see cref="PrefixCacheBytes"/> when the configuration sets none: 256 MiB per instance.</summary>
    public const long DefaultPrefixCacheBytes = 256L << 20;

    /// <summary>Token ids that end a sequence besides the tokenizer's end-of-sequence id.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary><see cref="KvCacheBytes"/> when the configuration sets none: 1 GiB per instance.</summary>
    public const long DefaultKvCacheBytes = 1L << 30;

    /// <summary><see cref="MaxModelLen"/> of a KV-cache decoder when no source gives one.</summary>
    public const int DefaultMaxModelLen = 2048;

    /// <summary>Most max_running_sequences of a KV-cache decoder.</summary>
    public const int MaxKvRunningSequences = 1024;

    /// <summary>max_running_sequences of a KV-cache decoder when no source sets it.</summary>
    public const int DefaultKvRunningSequences = 16;

    /// <summary>
    /// Validates the section against the model's resolved tensors (dims without the batch dimension when
    /// <paramref name="maxBatchSize"/> is positive). A KV-cache decoder (<see cref="KvCacheLayout.Recognize"/>) takes its
    /// tensors from the graph and needs only a tokenizer from <paramref name="entry"/>; a window decoder needs the
    /// section. Throws <see cref="ModelConfigException"/> naming what is wrong. <paramref name="lengthsFromMask"/>: see
    /// <see cref="KvCacheLayout.Recognize"/>.
    /// </summary>
    public static GenerationSettings Resolve(
        ModelConfigFile.GenerationEntry? entry, int maxBatchSize, IReadOnlyList<TensorConfig> inputs, IReadOnlyList<TensorConfig> outputs, bool lengthsFromMask = false)
    {
        var kv = KvCacheLayout.Recognize(inputs, outputs, maxBatchSize > 0, lengthsFromMask);
        if (kv is not null)
        {
            return ResolveKvCache(entry, kv, maxBatchSize, inputs, outputs);
        }
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.MaxNumBatchedTokens is not null || entry.EnablePrefixCaching is not null || entry.PrefixCacheBytes is not null)
        {
            throw new ModelConfigException("generation.max_num_batched_tokens, enable_prefix_caching and prefix_cache_bytes are for KV-cache decoders; a window decoder recomputes its window every step");
        }
        if (maxBatchSize < 1)
        {
            throw new ModelConfigException("a generative model needs a batch dimension (max_batch_size >= 1): its sequences are stepped together as one batch");
        }
        // The ids are the only input besides an attention mask, unless named.
        var maskName = entry.AttentionMask ?? KvCacheLayout.AttentionMaskName;
        var input = Pick(entry.InputIds is null && inputs.Count == 2 && inputs.Any(t => t.Name == maskName) ? inputs.Where(t => t.Name != maskName).ToList() : inputs,
            entry.InputIds, "input", "generation.input_ids");
        if (input.DataType is not (DataType.Int64 or DataType.Int32))
        {
            throw new ModelConfigException($"generation input '{input.Name}' must be TYPE_INT64 or TYPE_INT32 token ids, not {input.DataType.ConfigName()}");
        }
        if (input.Dims.Length != 1)
        {
            throw new ModelConfigException($"generation input '{input.Name}' must have one dimension after the batch (the sequence), not [{string.Join(",", input.Dims)}]");
        }
        var fixedLength = input.Dims[0];
        var window = entry.ContextWindow ?? (fixedLength > 0 ? (int)fixedLength
            : throw new ModelConfigException($"input '{input.Name}' has a variable length: set generation.context_window"));
        if (window < 1 || (fixedLength > 0 && window != fixedLength))
        {
            throw new ModelConfigException($"generation.context_window {window} must be positive and equal the input's length {fixedLength} when it is fixed");
        }
        string? mask = null;
        var maskType = DataType.Int64;
        if (entry.AttentionMask is not null || inputs.Any(t => t.Name == KvCacheLayout.AttentionMaskName && t.Name != input.Name))
        {
            var maskInput = Pick(inputs, entry.AttentionMask ?? KvCacheLayout.AttentionMaskName, "input", "generation.attention_mask");
            if (maskInput.DataType is not (DataType.Int64 or DataType.Int32) || maskInput.Dims.Length != 1 || maskInput.Name == input.Name)
            {
                throw new ModelConfigException($"generation.attention_mask '{maskInput.Name}' must be a TYPE_INT64 or TYPE_INT32 input of one dimension after the batch, other than the ids");
            }
            mask = maskInput.Name;
            maskType = maskInput.DataType;
        }
        if (inputs.FirstOrDefault(t => t.Name != input.Name && t.Name != mask) is { } extra)
        {
            throw new ModelConfigException($"the model has an input '{extra.Name}' the window decoder does not feed (it feeds the ids '{input.Name}'{(mask is null ? "" : $" and the mask '{mask}'")})");
        }
        var logits = Pick(outputs, entry.Logits, "output", "generation.logits");
        var width = CheckLogits(logits, 1, 2);
        var common = Common(entry, maxBatchSize, maxBatchSize, "max_batch_size", width);
        return common with
        {
            ContextWindow = window,
            InputName = input.Name,
            InputType = input.DataType,
            LogitsName = logits.Name,
            LogitsType = logits.DataType,
            LogitsPerPosition = logits.Dims.Length == 2,
            AttentionMaskName = mask,
            AttentionMaskType = maskType,
        };
    }

    /// <summary>A KV-cache decoder's settings: its interface from the graph, the rest from the sources or defaults.</summary>
    private static GenerationSettings ResolveKvCache(
        ModelConfigFile.GenerationEntry? entry, KvCacheLayout kv, int maxBatchSize, IReadOnlyList<TensorConfig> inputs, IReadOnlyList<TensorConfig> outputs)
    {
        if (entry?.Tokenizer is null)
        {
            throw new ModelConfigException("the model is a KV-cache decoder (it has past_key_values inputs) but has no tokenizer: put the tokenizer.json it was exported with beside the model, or set generation.tokenizer in config.yaml");
        }
        if (entry.ContextWindow is not null || entry.InputIds is not null || entry.Logits is not null || entry.AttentionMask is not null)
        {
            throw new ModelConfigException("generation.context_window, input_ids, logits and attention_mask are for window decoders; a KV-cache decoder's tensors are read from its graph (set max_model_len for its context)");
        }
        var logits = outputs.First(t => t.Name == KvCacheLayout.LogitsName);
        var width = CheckLogits(logits, maxBatchSize > 0 ? 2 : 3, maxBatchSize > 0 ? 2 : 3);
        var ids = inputs.First(t => t.Name == KvCacheLayout.InputIdsName);
        var maxModelLen = entry.MaxModelLen ?? DefaultMaxModelLen;
        if (maxModelLen < 2)
        {
            throw new ModelConfigException($"generation.max_model_len {maxModelLen} must be at least 2");
        }
        var budget = entry.KvCacheBytes ?? DefaultKvCacheBytes;
        if (budget < 1)
        {
            throw new ModelConfigException($"generation.kv_cache_bytes {budget} must be positive");
        }
        // The engine batches its own sequences (the cache bounds how many), so max_batch_size does not limit them.
        var common = Common(entry, DefaultKvRunningSequences, MaxKvRunningSequences, "the engine's limit", width);
        var batched = entry.MaxNumBatchedTokens ?? Math.Max(DefaultMaxNumBatchedTokens, 2 * common.MaxRunningSequences);
        if (batched <= common.MaxRunningSequences)
        {
            throw new ModelConfigException($"generation.max_num_batched_tokens {batched} must exceed max_running_sequences {common.MaxRunningSequences}: every iteration gives each running sequence a token and needs room for at least one prompt token");
        }
        var prefixBytes = entry.PrefixCacheBytes ?? DefaultPrefixCacheBytes;
        if (prefixBytes < 0)
        {
            throw new ModelConfigException($"generation.prefix_cache_bytes {prefixBytes} must not be negative");
        }
        return common with
        {
            ContextWindow = maxModelLen,
            InputName = ids.Name,
            InputType = ids.DataType,
            LogitsName = logits.Name,
            LogitsType = logits.DataType,
            LogitsPerPosition = true,
            KvCache = kv,
            MaxModelLen = maxModelLen,
            KvCacheBytes = budget,
            MaxNumBatchedTokens = batched,
            EnablePrefixCaching = entry.EnablePrefixCaching ?? true,
            PrefixCacheBytes = prefixBytes,
        };
    }

    /// <summary>Checks the logits output (rank after the batch between <paramref name="minRank"/> and <paramref name="maxRank"/>) and returns its width.</summary>
    private static int CheckLogits(TensorConfig logits, int minRank, int maxRank)
    {
        if (logits.DataType is not (DataType.Fp32 or DataType.Fp16 or DataType.Bf16))
        {
            throw new ModelConfigException($"generation logits '{logits.Name}' must be TYPE_FP32, TYPE_FP16 or TYPE_BF16, not {logits.DataType.ConfigName()}");
        }
        if (logits.Dims.Length < minRank || logits.Dims.Length > maxRank || logits.Dims[^1] < 1)
        {
            throw new ModelConfigException($"generation logits '{logits.Name}' must be [window, vocabulary] or [vocabulary] after the batch with a fixed vocabulary size, not [{string.Join(",", logits.Dims)}]");
        }
        return (int)logits.Dims[^1];
    }

    /// <summary>The settings every decoder shares: tokenizer, pad and stop ids, batcher bounds, max_tokens.</summary>
    private static GenerationSettings Common(ModelConfigFile.GenerationEntry entry, int defaultRunning, int runningLimit, string limitName, int width)
    {
        if (entry.Tokenizer is null)
        {
            throw new ModelConfigException("generation.tokenizer is required (kind: characters | bpe | sentencepiece | tiktoken | tokenizer_json)");
        }
        var pad = entry.PadTokenId ?? 0;
        if (pad < 0 || pad >= width)
        {
            throw new ModelConfigException($"generation.pad_token_id {pad} is outside the vocabulary (0..{width - 1})");
        }
        var running = entry.MaxRunningSequences ?? defaultRunning;
        if (running < 1 || running > runningLimit)
        {
            throw new ModelConfigException($"generation.max_running_sequences {running} must be between 1 and {runningLimit} ({limitName})");
        }
        var waiting = entry.MaxWaitingSequences ?? 256;
        var defaultMax = entry.DefaultMaxTokens ?? 256;
        var limit = entry.MaxTokensLimit ?? 4096;
        if (waiting < 0 || defaultMax < 1 || limit < 1 || defaultMax > limit)
        {
            throw new ModelConfigException("generation: max_waiting_sequences must be >= 0, default_max_tokens and max_tokens_limit >= 1, and default_max_tokens <= max_tokens_limit");
        }
        var stops = entry.StopTokenIds ?? [];
        if (stops.FirstOrDefault(id => id < 0 || id >= width, -1) is var bad && bad != -1)
        {
            throw new ModelConfigException($"generation.stop_token_ids: {bad} is outside the vocabulary (0..{width - 1})");
        }
        return new GenerationSettings
        {
            Tokenizer = entry.Tokenizer,
            ChatTemplate = entry.ChatTemplate,
            ContextWindow = 1,
            PadTokenId = pad,
            InputName = "",
            LogitsName = "",
            LogitsWidth = width,
            MaxRunningSequences = running,
            MaxWaitingSequences = waiting,
            DefaultMaxTokens = defaultMax,
            MaxTokensLimit = limit,
            StopTokenIds = stops.Distinct().ToArray(),
        };
    }

    private static TensorConfig Pick(IReadOnlyList<TensorConfig> tensors, string? name, string kind, string key)
    {
        if (name is not null)
        {
            return tensors.FirstOrDefault(t => t.Name == name)
                ?? throw new ModelConfigException($"{key} names {kind} '{name}', which the model does not have (it has: {string.Join(", ", tensors.Select(t => t.Name))})");
        }
        return tensors.Count == 1
            ? tensors[0]
            : throw new ModelConfigException($"the model has {tensors.Count} {kind}s: name the one to use in {key}");
    }
}
