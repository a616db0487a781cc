using InferenceServer.Inference;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Generation;

/// <summary>An <see cref="ITokenizer"/> over a Microsoft.ML.Tokenizers tokenizer (byte-level BPE, SentencePiece, tiktoken).</summary>
public sealed class MlTokenizer : ITokenizer
{
    private readonly Tokenizer _tokenizer;
    private readonly Func<IEnumerable<int>, string> _decode;
    // A token with plain one-character text that streaming decodes put in front of mid-sequence tails (see TailDecoder); -1 if none.
    private readonly int _anchor;

    /// <summary>Wraps <paramref name="tokenizer"/>, whose ids are 0 to <paramref name="vocabularySize"/> - 1.</summary>
    /// <exception cref="ArgumentException">The vocabulary size is not positive or a special id is outside it.</exception>
    public MlTokenizer(Tokenizer tokenizer, int vocabularySize, int? eosTokenId = null, int? bosTokenId = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (vocabularySize <= 0)
        {
            throw new ArgumentException($"the vocabulary size must be positive, got {vocabularySize}", nameof(vocabularySize));
        }
        CheckSpecial(eosTokenId, vocabularySize, "EOS", nameof(eosTokenId));
        CheckSpecial(bosTokenId, vocabularySize, "BOS", nameof(bosTokenId));
        _tokenizer = tokenizer;
        _decode = tokenizer.Decode;
        VocabularySize = vocabularySize;
        EosTokenId = eosTokenId;
        BosTokenId = bosTokenId;
        _anchor = -1;
        foreach (var candidate in new[] { "a", "A", "0", "." })
        {
            if (FindTokenId(candidate) is { } id && id < vocabularySize)
            {
                _anchor = id;
                break;
            }
        }
    }

    /// <summary>The wrapped tokenizer.</summary>
    public Tokenizer Inner => _tokenizer;

    /// <inheritdoc/>
    public int VocabularySize { get; }

    /// <inheritdoc/>
    public int? EosTokenId { get; }

    /// <inheritdoc/>
    public int? BosTokenId { get; }

    /// <inheritdoc/>
    public void Encode(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        // Byte-level BPE, tiktoken and byte-fallback SentencePiece represent any text, so there is nothing to reject here.
        ids.AddRange(_tokenizer.EncodeToIds(text));
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        // The library silently skips unknown ids; a client that sent one should hear about it instead.
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabularySize)
            {
                throw InferenceException.InvalidArgument($"token id {id} is outside the vocabulary (0..{VocabularySize - 1})");
            }
        }
        return _tokenizer.Decode(ids.ToArray());
    }

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder() => new TailDecoder(_decode, VocabularySize, default, _anchor);

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder(ReadOnlySpan<int> context) => new TailDecoder(_decode, VocabularySize, context, _anchor);

    /// <summary>The id of the single token whose text is <paramref name="token"/> (special tokens included), or null when no one token has that text.</summary>
    public int? FindTokenId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        var (special, vocabulary) = _tokenizer switch
        {
            BpeTokenizer b => (b.SpecialTokens, null),
            SentencePieceTokenizer s => (s.SpecialTokens, s.Vocabulary),
            TiktokenTokenizer t => (t.SpecialTokens, null),
            _ => ((IReadOnlyDictionary<string, int>?)null, (IReadOnlyDictionary<string, int>?)null),
        };
        if (special is not null && special.TryGetValue(token, out var id))
        {
            return id;
        }
        // Byte-level vocabularies store mapped characters (' ' as 'Ġ'), so their keys are only looked up through encoding below.
        if (vocabulary is not null && vocabulary.TryGetValue(token, out id))
        {
            return id;
        }
        var ids = _tokenizer.EncodeToIds(token);
        return ids.Count == 1 && _tokenizer.Decode(ids) == token ? ids[0] : null;
    }

    private static void CheckSpecial(int? id, int vocabularySize, string what, string parameter)
    {
        if (id is { } value && (value < 0 || value >= vocabularySize))
        {
            throw new ArgumentException($"the {what} token id {value} is outside the vocabulary (0..{vocabularySize - 1})", parameter);
        }
    }
}
