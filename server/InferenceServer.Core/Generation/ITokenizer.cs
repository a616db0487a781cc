namespace InferenceServer.Generation;

/// <summary>Turns text into token ids and back for one model; shared by every sequence of the model, so implementations are thread-safe.</summary>
public interface ITokenizer
{
    /// <summary>The number of token ids the tokenizer can produce (ids are 0 to <c>VocabularySize - 1</c>).</summary>
    int VocabularySize { get; }

    /// <summary>The end-of-sequence token that stops generation, or null when the tokenizer has none.</summary>
    int? EosTokenId { get; }

    /// <summary>
    /// The token the model expects before the prompt, or null when none. The two-argument <see cref="Encode(string, List{int})"/>
    /// never adds it; <see cref="Encode(string, List{int}, bool)"/> with special tokens does.
    /// </summary>
    int? BosTokenId { get; }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/>, without the special tokens a prompt gets (no BOS).</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the text holds something the vocabulary cannot represent.</exception>
    void Encode(string text, List<int> ids);

    /// <summary>
    /// Appends the ids of <paramref name="text"/> as Hugging Face's <c>tokenizer(text, add_special_tokens=…)</c> gives them:
    /// with <paramref name="addSpecialTokens"/> the tokens the tokenizer puts around a sequence (its post-processor's BOS/EOS,
    /// BERT's [CLS]/[SEP]; for tokenizers without a post-processor, <see cref="BosTokenId"/> first). Special tokens spelled
    /// in the text are matched either way.
    /// </summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the text holds something the vocabulary cannot represent.</exception>
    void Encode(string text, List<int> ids, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (addSpecialTokens && BosTokenId is { } bos)
        {
            ids.Add(bos);
        }
        Encode(text, ids);
    }

    /// <summary>The text of <paramref name="ids"/>, leaving out special tokens (BOS, EOS, chat markers) when <paramref name="skipSpecialTokens"/>.</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when an id is outside the vocabulary.</exception>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens) => Decode(ids);

    /// <summary>
    /// The vocabulary's own string for one id (Hugging Face's <c>convert_ids_to_tokens</c>: "Ġhello", "▁the", "##ing"),
    /// which is what vLLM's <c>/tokenize</c> returns as <c>token_strs</c>; tokenizers without such strings give the id's text.
    /// </summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the id is outside the vocabulary.</exception>
    string TokenString(int id) => Decode([id]);

    /// <summary>A streaming detokenizer for one generated sequence.</summary>
    IncrementalDecoder CreateDecoder();

    /// <summary>
    /// A streaming detokenizer whose first tokens continue <paramref name="context"/> (typically the prompt's last ids):
    /// the context is never emitted, it only lets the first generated token decode as a continuation (e.g. keep its leading space).
    /// </summary>
    IncrementalDecoder CreateDecoder(ReadOnlySpan<int> context);

    /// <summary>The text of <paramref name="ids"/>.</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when an id is outside the vocabulary.</exception>
    string Decode(ReadOnlySpan<int> ids);
}
