namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// WordPiece as Rust tokenizers: greedy longest-match-first from the left, pieces after the first carry the continuing
/// prefix ("##"); a word with any unmatched part, or longer than max_input_chars_per_word characters, is the unk token.
/// </summary>
internal sealed class WordPieceModel : TokenizerModel
{
    private readonly Dictionary<string, int> _vocabulary;
    private readonly string?[] _tokens;
    private readonly string _unkToken;
    private readonly string _prefix;
    private readonly int _maxInputChars;
    private readonly WordCache _cache = new();

    public WordPieceModel(Dictionary<string, int> vocabulary, string unkToken, string continuingSubwordPrefix, int maxInputCharsPerWord)
    {
        _vocabulary = vocabulary;
        _tokens = Reverse(vocabulary);
        _unkToken = unkToken;
        _prefix = continuingSubwordPrefix;
        _maxInputChars = maxInputCharsPerWord;
    }

    /// <summary>The continuing-subword prefix ("##").</summary>
    public string Prefix => _prefix;

    public override int MaxId => _tokens.Length - 1;

    public override string? IdToToken(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    public override int? TokenToId(string token) => _vocabulary.TryGetValue(token, out var id) ? id : null;

    public override void Tokenize(string word, List<int> ids)
    {
        if (_cache.TryGet(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var result = Split(word);
        _cache.Add(word, result);
        ids.AddRange(result);
    }

    private int[] Split(string word)
    {
        var chars = 0;
        foreach (var _ in word.EnumerateRunes())
        {
            chars++;
        }
        if (chars > _maxInputChars)
        {
            return [Unk()];
        }
        var pieces = new List<int>();
        var start = 0;
        while (start < word.Length)
        {
            var end = word.Length;
            var found = -1;
            while (start < end)
            {
                var sub = word[start..end];
                if (start > 0)
                {
                    sub = _prefix + sub;
                }
                if (_vocabulary.TryGetValue(sub, out var id))
                {
                    found = id;
                    break;
                }
                end -= end - 2 >= start && char.IsLowSurrogate(word[end - 1]) && char.IsHighSurrogate(word[end - 2]) ? 2 : 1;
            }
            if (found < 0)
            {
                return [Unk()];
            }
            pieces.Add(found);
            start = end;
        }
        return pieces.ToArray();
    }

    private int Unk() => _vocabulary.TryGetValue(_unkToken, out var id)
        ? id
        : throw Inference.InferenceException.InvalidArgument($"the text needs the unk token '{_unkToken}', which is not in the vocabulary");
}

/// <summary>WordLevel: the whole word is one vocabulary token, or the unk token.</summary>
internal sealed class WordLevelModel(Dictionary<string, int> vocabulary, string? unkToken) : TokenizerModel
{
    private readonly string?[] _tokens = Reverse(vocabulary);

    public override int MaxId => _tokens.Length - 1;

    public override string? IdToToken(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    public override int? TokenToId(string token) => vocabulary.TryGetValue(token, out var id) ? id : null;

    public override void Tokenize(string word, List<int> ids)
    {
        if (vocabulary.TryGetValue(word, out var id) || (unkToken is not null && vocabulary.TryGetValue(unkToken, out id)))
        {
            ids.Add(id);
            return;
        }
        throw Inference.InferenceException.InvalidArgument($"the text has '{word}', which the vocabulary cannot represent (no unk_token)");
    }
}
