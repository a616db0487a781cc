namespace InferenceServer.Generation;

/// <summary>Turns text into token ids and back for one model; shared by every sequence of the model, so implementations are thread-safe.</summary>
public interface ITokenizer
{
    /// <summary>The number of token ids the tokenizer can produce (ids are 0 to <c>VocabularySize - 1</c>).</summary>
    int VocabularySize { get; }

    /// <summary>The end-of-sequence token that stops generation, or null when the tokenizer has none.</summary>
    int? EosTokenId { get; }

    /// <summary>The token the model expects before the prompt, or null when none; <see cref="Encode"/> never adds it, the caller puts it first once per sequence.</summary>
    int? BosTokenId { get; }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/>.</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the text holds something the vocabulary cannot represent.</exception>
    void Encode(string text, List<int> ids);

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
