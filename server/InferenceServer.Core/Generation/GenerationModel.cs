using InferenceServer.Configuration;
using InferenceServer.Generation.Chat;

namespace InferenceServer.Generation;

/// <summary>
/// What turns a generative model's tensor interface (token ids in, next-token logits out) into a text generator: its
/// resolved <see cref="GenerationSettings"/> with the tokenizer and chat template built from them. Made when the
/// version loads and held by its continuous batcher.
/// </summary>
public sealed class GenerationModel
{
    /// <summary>A model from settings and an already built tokenizer and template.</summary>
    public GenerationModel(GenerationSettings settings, ITokenizer tokenizer, IChatTemplate chatTemplate)
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

    /// <summary>Chat messages to a prompt: the model's own Jinja template, or format strings from config.yaml.</summary>
    public IChatTemplate ChatTemplate { get; }

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
        IChatTemplate template;
        try
        {
            tokenizer = TokenizerFactory.Create(settings.Tokenizer, modelDirectory);
            template = CreateChatTemplate(settings, modelDirectory);
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

    /// <summary>
    /// The chat template: format strings when config.yaml gives <c>generation.chat_template</c>; otherwise the model's own
    /// Jinja template found beside its tokenizer file (<see cref="ChatTemplateFiles"/>); otherwise each message's content
    /// on its own line (<see cref="FormatChatTemplate.Default"/>).
    /// </summary>
    private static IChatTemplate CreateChatTemplate(GenerationSettings settings, string modelDirectory)
    {
        if (settings.ChatTemplate is not null)
        {
            return FormatChatTemplate.FromSpec(settings.ChatTemplate);
        }
        var tokenizerFile = settings.Tokenizer.File ?? settings.Tokenizer.VocabFile ?? settings.Tokenizer.Kind switch
        {
            TokenizerSpec.TokenizerJson => "tokenizer.json",
            TokenizerSpec.SentencePiece => "tokenizer.model",
            TokenizerSpec.Bpe => "vocab.json",
            _ => null,
        };
        if (tokenizerFile is null)
        {
            return FormatChatTemplate.Default;
        }
        var root = Path.GetFullPath(modelDirectory);
        var directory = Path.GetDirectoryName(Path.GetFullPath(Path.Combine(root, tokenizerFile)))!;
        if (!(directory + Path.DirectorySeparatorChar).StartsWith(Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return FormatChatTemplate.Default;
        }
        return (IChatTemplate?)ChatTemplateFiles.Find(directory, path => Path.GetRelativePath(root, path)) ?? FormatChatTemplate.Default;
    }
}
