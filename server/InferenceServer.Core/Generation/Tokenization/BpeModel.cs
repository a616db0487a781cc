using System.Text;

namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// Byte-pair encoding as Rust tokenizers' BPE model: each character (with continuing_subword_prefix after the first and
/// end_of_word_suffix on the last) starts as a symbol, unknown ones become &lt;0xNN&gt; byte tokens (byte_fallback) or the
/// unk token (fused when fuse_unk), then the lowest-ranked merge is applied first, leftmost on ties. With ignore_merges a
/// word that is itself in the vocabulary is that one token.
/// </summary>
internal sealed class BpeModel : TokenizerModel
{
    private readonly Dictionary<string, int> _vocabulary;
    private readonly string?[] _tokens;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly string? _unkToken;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly int[]? _byteIds;
    private readonly WordCache _cache = new();

    public BpeModel(Dictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges, string? unkToken,
        string? continuingSubwordPrefix, string? endOfWordSuffix, bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocabulary = vocabulary;
        _tokens = Reverse(vocabulary);
        _unkToken = unkToken;
        _prefix = string.IsNullOrEmpty(continuingSubwordPrefix) ? null : continuingSubwordPrefix;
        _suffix = string.IsNullOrEmpty(endOfWordSuffix) ? null : endOfWordSuffix;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        if (unkToken is not null && !vocabulary.ContainsKey(unkToken))
        {
            throw new TokenizerFormatException($"model.unk_token '{unkToken}' is not in model.vocab");
        }
        if (byteFallback)
        {
            _byteIds = new int[256];
            for (var b = 0; b < 256; b++)
            {
                _byteIds[b] = vocabulary.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
            }
        }
        var prefixLength = _prefix?.Length ?? 0;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocabulary.TryGetValue(left, out var a) || !vocabulary.TryGetValue(right, out var b))
            {
                throw new TokenizerFormatException($"model.merges entry {rank} ('{left} {right}') uses a token that is not in model.vocab");
            }
            var merged = left + (right.Length >= prefixLength ? right[prefixLength..] : right);
            if (!vocabulary.TryGetValue(merged, out var newId))
            {
                throw new TokenizerFormatException($"model.merges entry {rank} ('{left} {right}') makes '{merged}', which is not in model.vocab");
            }
            _merges[Key(a, b)] = (rank, newId);
        }
    }

    public override int MaxId => _tokens.Length - 1;

    public override IEnumerable<string> WholeWordForms(string text) => _suffix is null ? [text] : [text + _suffix, text];

    public override string? IdToToken(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    public override int? TokenToId(string token) => _vocabulary.TryGetValue(token, out var id) ? id : null;

    public override void Tokenize(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }
        if (_ignoreMerges && _vocabulary.TryGetValue(word, out var whole))
        {
            ids.Add(whole);
            return;
        }
        if (_cache.TryGet(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var result = Merge(word);
        _cache.Add(word, result);
        ids.AddRange(result);
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    private int[] Merge(string word)
    {
        var symbols = new List<int>(word.Length);
        int unkId = -1;
        var index = 0;
        while (index < word.Length)
        {
            var length = char.IsHighSurrogate(word[index]) && index + 1 < word.Length && char.IsLowSurrogate(word[index + 1]) ? 2 : 1;
            var isFirst = index == 0;
            var isLast = index + length == word.Length;
            var s = word.Substring(index, length);
            index += length;
            if (!isFirst && _prefix is not null)
            {
                s = _prefix + s;
            }
            if (isLast && _suffix is not null)
            {
                s += _suffix;
            }
            if (_vocabulary.TryGetValue(s, out var id))
            {
                if (unkId >= 0)
                {
                    symbols.Add(unkId);
                    unkId = -1;
                }
                symbols.Add(id);
                continue;
            }
            if (_byteIds is not null)
            {
                var bytes = Encoding.UTF8.GetBytes(s);
                if (Array.TrueForAll(bytes, b => _byteIds[b] >= 0))
                {
                    // Rust adds the byte tokens without flushing a pending unk first.
                    foreach (var b in bytes)
                    {
                        symbols.Add(_byteIds[b]);
                    }
                    continue;
                }
            }
            if (_unkToken is not null)
            {
                var unk = _vocabulary[_unkToken];
                if (unkId >= 0 && !_fuseUnk)
                {
                    symbols.Add(unkId);
                }
                unkId = unk;
            }
        }
        if (unkId >= 0)
        {
            symbols.Add(unkId);
        }
        return MergeAll(symbols);
    }

    // Rust's Word::merge_all: a priority queue of (rank, position) over a doubly linked list of symbols.
    private int[] MergeAll(List<int> ids)
    {
        var count = ids.Count;
        if (count < 2)
        {
            return ids.ToArray();
        }
        var symbol = ids.ToArray();
        var prev = new int[count];
        var next = new int[count];
        var alive = new bool[count];
        for (var i = 0; i < count; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
            alive[i] = true;
        }
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (var i = 0; i + 1 < count; i++)
        {
            if (_merges.TryGetValue(Key(symbol[i], symbol[i + 1]), out var m))
            {
                queue.Enqueue((i, m.NewId), (m.Rank, i));
            }
        }
        while (queue.TryDequeue(out var top, out _))
        {
            var pos = top.Pos;
            if (!alive[pos] || next[pos] == -1)
            {
                continue;
            }
            var right = next[pos];
            if (!_merges.TryGetValue(Key(symbol[pos], symbol[right]), out var current) || current.NewId != top.NewId)
            {
                continue;
            }
            symbol[pos] = top.NewId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] >= 0)
            {
                prev[next[right]] = pos;
            }
            if (prev[pos] >= 0 && _merges.TryGetValue(Key(symbol[prev[pos]], symbol[pos]), out var left))
            {
                queue.Enqueue((prev[pos], left.NewId), (left.Rank, prev[pos]));
            }
            if (next[pos] >= 0 && _merges.TryGetValue(Key(symbol[pos], symbol[next[pos]]), out var after))
            {
                queue.Enqueue((pos, after.NewId), (after.Rank, pos));
            }
        }
        var result = new List<int>(count);
        for (var i = 0; i < count; i++)
        {
            if (alive[i])
            {
                result.Add(symbol[i]);
            }
        }
        return result.ToArray();
    }
}
