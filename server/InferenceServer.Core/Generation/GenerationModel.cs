using InferenceServer.Configuration;

namespace InferenceServer.Generation;

/// <summary>
/// What turns a generative model's tensor interface (token ids in, next-token logits out) into a text generator: its
/// resolved <see cref="GenerationSettings"/> with the tokenizer and chat template built from them. Made when the
/// version loads and held by its continuous batcher.
/// </summary>
public sealed class GenerationModel
{
    /// <summary>A model from settings and an already built tokenizer and template.</summary>
    public GenerationModel(GenerationSettings settings, ITokenizer tokenizer, ChatTemplate chatTemplate)
    {
        Settings = settings;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        KvCache = settings.KvCache is not null ? KvCachePlan.Create(settings) : null;
        EndTokenIds = (tokenizer.EosTokenId is { } eos ? settings.StopTokenIds.Prepend(eos) : settings.StopTokenIds).Distinct().ToArray();
    }

    /// <summary>How each instance's KV cache is laid out, for a KV-cache decoder; null for a window decoder.</summary>
    public KvCachePlan? KvCache { get; }

    /// <summary>The resolved <c>generation</c> section.</summary>
    public GenerationSettings Settings { get; }

    /// <summary>Text to token ids and back.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>Chat messages to a prompt.</summary>
    public ChatTemplate ChatTemplate { get; }

    /// <summary>
    /// The ids that end a sequence with <c>finish_reason: stop</c> (unless the request sets <c>ignore_eos</c>): the
    /// tokenizer's end-of-sequence id and <see cref="GenerationSettings.StopTokenIds"/>. Built once per model, so that
    /// checking a token allocates nothing; usually one to three ids.
    /// </summary>
    public ReadOnlyMemory<int> EndTokenIds { get; }

    /// <summary>
    /// Builds the tokenizer (its files are read from <paramref name="modelDirectory"/>) and the chat template, and checks
    /// that the tokenizer's vocabulary fits the logits. Throws <see cref="ModelConfigException"/> naming what is wrong.
    /// </summary>
    public static GenerationModel Create(GenerationSettings settings, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ITokenizer tokenizer;
        ChatTemplate template;
        try
        {
            tokenizer = TokenizerFactory.Create(settings.Tokenizer, modelDirectory);
            template = ChatTemplate.FromSpec(settings.ChatTemplate);
        }
        catch (ArgumentException e)
        {
            throw new ModelConfigException("generation: " + e.Message);
        }
        if (tokenizer.VocabularySize > settings.LogitsWidth)
        {
            throw new ModelConfigException($"the tokenizer has {tokenizer.VocabularySize} tokens but logits '{settings.LogitsName}' only {settings.LogitsWidth}");
        }
        return new GenerationModel(settings, tokenizer, template);
    }
}
