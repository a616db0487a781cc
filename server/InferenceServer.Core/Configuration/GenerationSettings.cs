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

    /// <summary>
    /// Validates the section against the model's resolved tensors (dims without the batch dimension). Throws
    /// <see cref="ModelConfigException"/> naming what is wrong.
    /// </summary>
    public static GenerationSettings Resolve(ModelConfigFile.GenerationEntry entry, int maxBatchSize, IReadOnlyList<TensorConfig> inputs, IReadOnlyList<TensorConfig> outputs)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (maxBatchSize < 1)
        {
            throw new ModelConfigException("a generative model needs a batch dimension (max_batch_size >= 1): its sequences are stepped together as one batch");
        }
        var input = Pick(inputs, entry.InputIds, "input", "generation.input_ids");
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
        var logits = Pick(outputs, entry.Logits, "output", "generation.logits");
        if (logits.DataType != DataType.Fp32)
        {
            throw new ModelConfigException($"generation logits '{logits.Name}' must be TYPE_FP32, not {logits.DataType.ConfigName()}");
        }
        if (logits.Dims.Length is not (1 or 2) || logits.Dims[^1] < 1)
        {
            throw new ModelConfigException($"generation logits '{logits.Name}' must be [window, vocabulary] or [vocabulary] after the batch with a fixed vocabulary size, not [{string.Join(",", logits.Dims)}]");
        }
        var width = (int)logits.Dims[^1];

        if (entry.Tokenizer is null)
        {
            throw new ModelConfigException("generation.tokenizer is required (kind: characters | bpe | sentencepiece | tiktoken | tokenizer_json)");
        }
        var pad = entry.PadTokenId ?? 0;
        if (pad < 0 || pad >= width)
        {
            throw new ModelConfigException($"generation.pad_token_id {pad} is outside the vocabulary (0..{width - 1})");
        }
        var running = entry.MaxRunningSequences ?? maxBatchSize;
        if (running < 1 || running > maxBatchSize)
        {
            throw new ModelConfigException($"generation.max_running_sequences {running} must be between 1 and max_batch_size {maxBatchSize}");
        }
        var waiting = entry.MaxWaitingSequences ?? 256;
        var defaultMax = entry.DefaultMaxTokens ?? 256;
        var limit = entry.MaxTokensLimit ?? 4096;
        if (waiting < 0 || defaultMax < 1 || limit < 1 || defaultMax > limit)
        {
            throw new ModelConfigException("generation: max_waiting_sequences must be >= 0, default_max_tokens and max_tokens_limit >= 1, and default_max_tokens <= max_tokens_limit");
        }
        return new GenerationSettings
        {
            Tokenizer = entry.Tokenizer,
            ChatTemplate = entry.ChatTemplate,
            ContextWindow = window,
            PadTokenId = pad,
            InputName = input.Name,
            InputType = input.DataType,
            LogitsName = logits.Name,
            LogitsPerPosition = logits.Dims.Length == 2,
            LogitsWidth = width,
            MaxRunningSequences = running,
            MaxWaitingSequences = waiting,
            DefaultMaxTokens = defaultMax,
            MaxTokensLimit = limit,
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
