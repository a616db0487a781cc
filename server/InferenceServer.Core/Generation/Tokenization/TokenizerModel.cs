namespace InferenceServer.Generation.Tokenization;

/// <summary>A tokenizer.json model (BPE, WordPiece, Unigram): turns one pre-tokenized word into ids and maps ids to token strings.</summary>
internal abstract class TokenizerModel
{
    /// <summary>Appends the ids of <paramref name="word"/> (non-empty).</summary>
    public abstract void Tokenize(string word, List<int> ids);

    /// <summary>The vocabulary's string of <paramref name="id"/>, or null.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>The id of the vocabulary string <paramref name="token"/>, or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>The vocabulary strings a whole word <paramref name="text"/> may have, most specific first.</summary>
    public virtual IEnumerable<string> WholeWordForms(string text) => [text];

    /// <summary>The largest id of the vocabulary (-1 when empty).</summary>
    public abstract int MaxId { get; }

    /// <summary>A reverse (id to token) table over a token-to-id vocabulary.</summary>
    protected static string?[] Reverse(IReadOnlyDictionary<string, int> vocabulary)
    {
        var max = vocabulary.Count == 0 ? -1 : vocabulary.Values.Max();
        var tokens = new string?[max + 1];
        foreach (var (token, id) in vocabulary)
        {
            tokens[id] = token;
        }
        return tokens;
    }
}

/// <summary>A bounded word-to-ids cache shared by all threads; cleared when full.</summary>
internal sealed class WordCache
{
    private const int Capacity = 20_000;
    private const int MaxWordLength = 256;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int[]> _entries = new(StringComparer.Ordinal);

    public bool TryGet(string word, out int[] ids) => _entries.TryGetValue(word, out ids!);

    public void Add(string word, int[] ids)
    {
        if (word.Length > MaxWordLength)
        {
            return;
        }
        if (_entries.Count >= Capacity)
        {
            _entries.Clear();
        }
        _entries[word] = ids;
    }
}
