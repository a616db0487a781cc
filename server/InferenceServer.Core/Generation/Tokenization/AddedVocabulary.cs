using System.Text;

namespace InferenceServer.Generation.Tokenization;

/// <summary>One entry of tokenizer.json's added_tokens.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool Lstrip, bool Rstrip, bool Normalized, bool Special);

/// <summary>
/// The added tokens, found in the text before the model sees it, as Rust tokenizers' AddedVocabulary: tokens with
/// normalized false are matched on the raw text first, then those with normalized true on each normalized remainder
/// (against their normalized content). Matching is leftmost-longest; single_word needs non-word characters (or the
/// ends) around the match, lstrip/rstrip take the whitespace on that side into the token.
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<string, AddedToken> _byContent = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _byId = [];
    private readonly Matcher _raw;
    private readonly Matcher _normalized;

    public AddedVocabulary(IReadOnlyList<AddedToken> tokens, Normalizer? normalizer)
    {
        var raw = new List<(string, AddedToken)>();
        var normalized = new List<(string, AddedToken)>();
        foreach (var token in tokens)
        {
            if (token.Content.Length == 0)
            {
                continue;
            }
            _byContent[token.Content] = token;
            _byId[token.Id] = token;
            if (token.Normalized)
            {
                normalized.Add((normalizer?.Normalize(token.Content) ?? token.Content, token));
            }
            else
            {
                raw.Add((token.Content, token));
            }
        }
        _raw = new Matcher(raw);
        _normalized = new Matcher(normalized);
    }

    public IEnumerable<AddedToken> Tokens => _byId.Values;

    public AddedToken? ById(int id) => _byId.GetValueOrDefault(id);

    public AddedToken? ByContent(string content) => _byContent.GetValueOrDefault(content);

    /// <summary>Whether <paramref name="content"/> is an added token marked special (the ones skip_special_tokens drops).</summary>
    public bool IsSpecial(string content) => _byContent.TryGetValue(content, out var token) && token.Special;

    /// <summary>
    /// Splits <paramref name="text"/> around the added tokens and normalizes the rest: each element is either an added
    /// token's id with no text, or a normalized piece (Id -1) still to be pre-tokenized. Empty pieces are left out.
    /// </summary>
    public void ExtractAndNormalize(string text, Normalizer? normalizer, List<(Piece Piece, int Id)> output)
    {
        foreach (var (start, end, id) in _raw.Find(text))
        {
            if (id >= 0)
            {
                output.Add((new Piece("", start == 0), id));
                continue;
            }
            if (end == start)
            {
                continue;
            }
            var piece = text[start..end];
            var normalizedText = normalizer?.Normalize(piece) ?? piece;
            foreach (var (s, e, innerId) in _normalized.Find(normalizedText))
            {
                if (innerId >= 0)
                {
                    output.Add((new Piece("", start == 0 && s == 0), innerId));
                }
                else if (e > s)
                {
                    output.Add((new Piece(normalizedText[s..e], start == 0 && s == 0), -1));
                }
            }
        }
    }

    private sealed class Matcher
    {
        // Candidates by first character, longest first, so the first hit at a position is the longest.
        private readonly Dictionary<char, List<(string Content, AddedToken Token)>> _byFirst = [];

        public Matcher(List<(string Content, AddedToken Token)> tokens)
        {
            foreach (var entry in tokens)
            {
                if (entry.Content.Length == 0)
                {
                    continue;
                }
                if (!_byFirst.TryGetValue(entry.Content[0], out var list))
                {
                    _byFirst[entry.Content[0]] = list = [];
                }
                list.Add(entry);
            }
            foreach (var list in _byFirst.Values)
            {
                list.Sort((a, b) => b.Content.Length.CompareTo(a.Content.Length));
            }
        }

        /// <summary>Spans covering <paramref name="text"/>: (start, end, id) for an added token, (start, end, -1) for text between them.</summary>
        public List<(int Start, int End, int Id)> Find(string text)
        {
            var splits = new List<(int, int, int)>();
            var startOffset = 0;
            var position = 0;
            if (_byFirst.Count > 0)
            {
                while (position < text.Length)
                {
                    if (!_byFirst.TryGetValue(text[position], out var candidates))
                    {
                        position++;
                        continue;
                    }
                    (string Content, AddedToken Token)? hit = null;
                    foreach (var candidate in candidates)
                    {
                        if (string.CompareOrdinal(text, position, candidate.Content, 0, candidate.Content.Length) == 0)
                        {
                            hit = candidate;
                            break;
                        }
                    }
                    if (hit is not { } match)
                    {
                        position++;
                        continue;
                    }
                    var start = position;
                    var stop = position + match.Content.Length;
                    position = stop;
                    var token = match.Token;
                    if (token.SingleWord)
                    {
                        var startSpace = start == 0 || !EndsWithWord(text, start);
                        var stopSpace = stop == text.Length || !StartsWithWord(text, stop);
                        if (!startSpace || !stopSpace)
                        {
                            continue;
                        }
                    }
                    if (token.Lstrip)
                    {
                        var newStart = start;
                        while (newStart > 0 && Rune.DecodeLastFromUtf16(text.AsSpan(0, newStart), out var rune, out var n) == System.Buffers.OperationStatus.Done && Rune.IsWhiteSpace(rune))
                        {
                            newStart -= n;
                        }
                        start = Math.Max(newStart, startOffset);
                    }
                    if (token.Rstrip)
                    {
                        while (stop < text.Length && Rune.DecodeFromUtf16(text.AsSpan(stop), out var rune, out var n) == System.Buffers.OperationStatus.Done && Rune.IsWhiteSpace(rune))
                        {
                            stop += n;
                        }
                    }
                    if (startOffset < start)
                    {
                        splits.Add((startOffset, start, -1));
                    }
                    splits.Add((start, stop, token.Id));
                    startOffset = stop;
                    position = Math.Max(position, stop);
                }
            }
            if (startOffset != text.Length)
            {
                splits.Add((startOffset, text.Length, -1));
            }
            return splits;
        }

        private static bool EndsWithWord(string text, int end) =>
            Rune.DecodeLastFromUtf16(text.AsSpan(0, end), out var rune, out _) == System.Buffers.OperationStatus.Done && IsWordCharacter(rune);

        private static bool StartsWithWord(string text, int start) =>
            Rune.DecodeFromUtf16(text.AsSpan(start), out var rune, out _) == System.Buffers.OperationStatus.Done && IsWordCharacter(rune);

        private static bool IsWordCharacter(Rune rune) => TextSplits.IsWordCharacter(rune);
    }
}
