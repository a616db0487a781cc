using System.Text;

namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// SentencePiece Unigram as Rust tokenizers' optimized encoder: Viterbi over a trie of the pieces, scoring an unknown
/// character as the lowest piece score minus 10, fusing adjacent unknown characters into one piece, then mapping pieces
/// absent from the vocabulary to &lt;0xNN&gt; byte tokens (byte_fallback) or unk_id.
/// </summary>
internal sealed class UnigramModel : TokenizerModel
{
    private const double UnkPenalty = 10.0;
    private readonly string[] _pieces;
    private readonly double[] _scores;
    private readonly Dictionary<string, int> _ids;
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly double _minScore;
    private readonly TrieNode _root = new();
    private readonly WordCache _cache = new();

    public UnigramModel(IReadOnlyList<(string Piece, double Score)> vocabulary, int? unkId, bool byteFallback)
    {
        _pieces = new string[vocabulary.Count];
        _scores = new double[vocabulary.Count];
        _ids = new Dictionary<string, int>(vocabulary.Count, StringComparer.Ordinal);
        _minScore = double.MaxValue;
        for (var id = 0; id < vocabulary.Count; id++)
        {
            var (piece, score) = vocabulary[id];
            _pieces[id] = piece;
            _scores[id] = score;
            _ids[piece] = id;
            _minScore = Math.Min(_minScore, score);
            var node = _root;
            foreach (var c in piece)
            {
                node.Children ??= [];
                if (!node.Children.TryGetValue(c, out var child))
                {
                    child = new TrieNode();
                    node.Children[c] = child;
                }
                node = child;
            }
            node.Id = id;
        }
        if (unkId is { } unk && (unk < 0 || unk >= vocabulary.Count))
        {
            throw new TokenizerFormatException($"model.unk_id {unk} is outside model.vocab (0..{vocabulary.Count - 1})");
        }
        _unkId = unkId;
        _byteFallback = byteFallback;
    }

    public override int MaxId => _pieces.Length - 1;

    public override string? IdToToken(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : null;

    public override int? TokenToId(string token) => _ids.TryGetValue(token, out var id) ? id : null;

    public override void Tokenize(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }
        if (_cache.TryGet(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var result = new List<int>();
        foreach (var piece in Viterbi(word))
        {
            if (_ids.TryGetValue(piece, out var id))
            {
                result.Add(id);
                continue;
            }
            if (_byteFallback)
            {
                var bytes = Encoding.UTF8.GetBytes(piece);
                var byteIds = new List<int>(bytes.Length);
                foreach (var b in bytes)
                {
                    if (!_ids.TryGetValue($"<0x{b:X2}>", out var byteId))
                    {
                        break;
                    }
                    byteIds.Add(byteId);
                }
                if (byteIds.Count == bytes.Length)
                {
                    result.AddRange(byteIds);
                    continue;
                }
            }
            result.Add(_unkId ?? throw Inference.InferenceException.InvalidArgument($"the text has '{piece}', which the vocabulary cannot represent (no unk_id)"));
        }
        var array = result.ToArray();
        _cache.Add(word, array);
        ids.AddRange(array);
    }

    private List<string> Viterbi(string text)
    {
        var size = text.Length;
        var score = new double[size + 1];
        var startsAt = new int[size + 1];
        var nodeId = new int[size + 1];
        Array.Fill(startsAt, -1);
        var start = 0;
        while (start < size)
        {
            var best = score[start];
            var charLength = char.IsHighSurrogate(text[start]) && start + 1 < size && char.IsLowSurrogate(text[start + 1]) ? 2 : 1;
            var hasSingle = false;
            var node = _root;
            for (var end = start; end < size; end++)
            {
                if (node.Children is null || !node.Children.TryGetValue(text[end], out node))
                {
                    break;
                }
                if (node.Id < 0)
                {
                    continue;
                }
                var keyEnd = end + 1;
                // A piece that ends between the halves of a surrogate pair is not a whole token (Rust works on code points).
                if (keyEnd < size && char.IsLowSurrogate(text[keyEnd]) && char.IsHighSurrogate(text[end]))
                {
                    continue;
                }
                var candidate = _scores[node.Id] + best;
                if (startsAt[keyEnd] < 0 || candidate > score[keyEnd])
                {
                    score[keyEnd] = candidate;
                    startsAt[keyEnd] = start;
                    nodeId[keyEnd] = node.Id;
                }
                if (keyEnd - start == charLength)
                {
                    hasSingle = true;
                }
            }
            if (!hasSingle)
            {
                var keyEnd = start + charLength;
                var candidate = _minScore - UnkPenalty + best;
                if (startsAt[keyEnd] < 0 || candidate > score[keyEnd])
                {
                    score[keyEnd] = candidate;
                    startsAt[keyEnd] = start;
                    nodeId[keyEnd] = _unkId ?? throw Inference.InferenceException.InvalidArgument($"the text has '{text.Substring(start, charLength)}', which the vocabulary cannot represent (no unk_id)");
                }
            }
            start += charLength;
        }
        var results = new List<string>();
        var fused = new List<string>();
        var endsAt = size;
        while (endsAt > 0)
        {
            var from = startsAt[endsAt];
            var piece = text[from..endsAt];
            if (_unkId is { } unk && nodeId[endsAt] == unk)
            {
                fused.Add(piece);
            }
            else
            {
                if (fused.Count > 0)
                {
                    fused.Reverse();
                    results.Add(string.Concat(fused));
                    fused.Clear();
                }
                results.Add(piece);
            }
            endsAt = from;
        }
        if (fused.Count > 0)
        {
            fused.Reverse();
            results.Add(string.Concat(fused));
        }
        results.Reverse();
        return results;
    }

    private sealed class TrieNode
    {
        public Dictionary<char, TrieNode>? Children;
        public int Id = -1;
    }
}
