using System.Buffers;
using System.Globalization;
using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>A character-level vocabulary (as small char-RNN / nanoGPT-style models use): token i is the i-th character of the vocabulary string.</summary>
public sealed class CharacterTokenizer : ITokenizer
{
    private readonly string _vocabulary;
    // Id by UTF-16 code unit, -1 when absent; sized to the largest vocabulary character, so an ASCII vocabulary needs ~128 entries.
    private readonly int[] _idByChar;
    // One cached string per id, so streaming decode allocates nothing per token.
    private readonly string[] _tokenText;

    /// <summary>Creates the tokenizer; <paramref name="vocabulary"/>[i] is token i.</summary>
    /// <exception cref="ArgumentException">The vocabulary is empty, repeats a character, holds surrogates, or the EOS id is outside it.</exception>
    public CharacterTokenizer(string vocabulary, int? eosTokenId = null)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        if (vocabulary.Length == 0)
        {
            throw new ArgumentException("the character vocabulary is empty", nameof(vocabulary));
        }
        var max = 0;
        foreach (var c in vocabulary)
        {
            if (char.IsSurrogate(c))
            {
                // A surrogate half is not a character; pairs would need two ids per character, which this format cannot express.
                throw new ArgumentException($"the character vocabulary contains a surrogate (U+{(int)c:X4}); only characters of the Basic Multilingual Plane are supported", nameof(vocabulary));
            }
            max = Math.Max(max, c);
        }
        _idByChar = new int[max + 1];
        Array.Fill(_idByChar, -1);
        _tokenText = new string[vocabulary.Length];
        for (var i = 0; i < vocabulary.Length; i++)
        {
            var c = vocabulary[i];
            if (_idByChar[c] >= 0)
            {
                throw new ArgumentException($"the character vocabulary contains {Describe(c)} twice (at {_idByChar[c]} and {i})", nameof(vocabulary));
            }
            _idByChar[c] = i;
            _tokenText[i] = c.ToString();
        }
        if (eosTokenId is { } eos && (eos < 0 || eos >= vocabulary.Length))
        {
            throw new ArgumentException($"the EOS token id {eos} is outside the vocabulary (0..{vocabulary.Length - 1})", nameof(eosTokenId));
        }
        _vocabulary = vocabulary;
        EosTokenId = eosTokenId;
    }

    /// <summary>The vocabulary string the tokenizer was built from.</summary>
    public string Vocabulary => _vocabulary;

    /// <inheritdoc/>
    public int VocabularySize => _vocabulary.Length;

    /// <inheritdoc/>
    public int? EosTokenId { get; }

    /// <inheritdoc/>
    public int? BosTokenId => null;

    /// <summary>The id of character <paramref name="c"/>, or -1 when it is not in the vocabulary.</summary>
    public int IdOf(char c) => c < _idByChar.Length ? _idByChar[c] : -1;

    /// <inheritdoc/>
    public void Encode(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        ids.EnsureCapacity(ids.Count + text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var id = IdOf(text[i]);
            if (id < 0)
            {
                throw InferenceException.InvalidArgument($"the prompt contains {Describe(text, i)}, which is not in the model's vocabulary");
            }
            ids.Add(id);
        }
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        foreach (var id in ids)
        {
            CheckId(id);
        }
        char[]? rented = null;
        var chars = ids.Length <= 512 ? stackalloc char[ids.Length] : (rented = ArrayPool<char>.Shared.Rent(ids.Length)).AsSpan(0, ids.Length);
        for (var i = 0; i < ids.Length; i++)
        {
            chars[i] = _vocabulary[ids[i]];
        }
        var text = new string(chars);
        if (rented is not null)
        {
            ArrayPool<char>.Shared.Return(rented);
        }
        return text;
    }

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder() => new Decoder(this);

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder(ReadOnlySpan<int> context) => new Decoder(this);

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)_vocabulary.Length)
        {
            throw InferenceException.InvalidArgument($"token id {id} is outside the vocabulary (0..{_vocabulary.Length - 1})");
        }
    }

    // Quotes printable characters and always gives the code point, so invisible or confusable characters are identifiable.
    private static string Describe(string text, int index)
    {
        var c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            return $"'{text.Substring(index, 2)}' (U+{char.ConvertToUtf32(c, text[index + 1]):X4})";
        }
        return Describe(c);
    }

    private static string Describe(char c)
    {
        var category = char.GetUnicodeCategory(c);
        var printable = !char.IsSurrogate(c) && category is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator or UnicodeCategory.OtherNotAssigned);
        return printable ? $"'{c}' (U+{(int)c:X4})" : $"U+{(int)c:X4}";
    }

    /// <summary>Every character token is final on its own, so decoding is a table lookup.</summary>
    private sealed class Decoder(CharacterTokenizer tokenizer) : IncrementalDecoder
    {
        public override string Append(int tokenId)
        {
            tokenizer.CheckId(tokenId);
            return tokenizer._tokenText[tokenId];
        }

        public override string Flush() => "";
    }
}
