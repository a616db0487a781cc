using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Tokenization;

/// <summary>A piece of text being tokenized; <see cref="AtStart"/> when it begins at offset 0 of the original text.</summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>How a split keeps the pieces a pattern matched (Rust tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>
/// Splitting text into pieces the way Rust tokenizers' NormalizedString::split does, from a list of (start, end, isMatch)
/// spans that cover the text; empty pieces are dropped. Regexes run over a copy of the text in which each supplementary-plane
/// character is one BMP stand-in of the same Unicode category, so \p{L}, \p{N} and single-character classes see whole code
/// points as the Rust (onig) regexes do, not UTF-16 surrogate halves.
/// </summary>
internal static class TextSplits
{
    private static readonly char[] StandIns = BuildStandIns();

    private static char[] BuildStandIns()
    {
        var result = new char[32];
        for (var c = 0xFFFF; c >= 0x80; c--)
        {
            if (char.IsSurrogate((char)c) || char.IsWhiteSpace((char)c))
            {
                continue;
            }
            result[(int)CharUnicodeInfo.GetUnicodeCategory((char)c)] = (char)c;
        }
        return result;
    }

    /// <summary>The (start, end) UTF-16 spans of the matches of <paramref name="regex"/> in <paramref name="text"/>, by whole code points.</summary>
    public static List<(int Start, int End)> Matches(Regex regex, string text)
    {
        var matches = new List<(int, int)>();
        if (!HasSurrogates(text))
        {
            for (var m = regex.Match(text); m.Success; m = m.NextMatch())
            {
                matches.Add((m.Index, m.Index + m.Length));
            }
            return matches;
        }
        // positions[i] = index in text of stand-in character i (plus the end).
        var builder = new StringBuilder(text.Length);
        var positions = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i++)
        {
            positions.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                var standIn = StandIns[(int)category];
                builder.Append(standIn == '\0' ? '\uE000' : standIn);
                i++;
            }
            else
            {
                builder.Append(text[i]);
            }
        }
        positions.Add(text.Length);
        var mapped = builder.ToString();
        for (var m = regex.Match(mapped); m.Success; m = m.NextMatch())
        {
            matches.Add((positions[m.Index], positions[m.Index + m.Length]));
        }
        return matches;
    }

    private static bool HasSurrogates(string text)
    {
        foreach (var c in text)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Splits by regex matches (or, with <paramref name="invert"/>, by what lies between them).</summary>
    public static void Split(Piece piece, Regex regex, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        var text = piece.Text;
        var spans = new List<(int Start, int End, bool Match)>();
        var previous = 0;
        foreach (var (start, end) in Matches(regex, text))
        {
            if (previous != start)
            {
                spans.Add((previous, start, invert));
            }
            spans.Add((start, end, !invert));
            previous = end;
        }
        if (previous != text.Length)
        {
            spans.Add((previous, text.Length, invert));
        }
        Apply(piece, spans, behavior, output);
    }

    /// <summary>Splits where <paramref name="isDelimiter"/> holds for a code point; each such code point is one match.</summary>
    public static void Split(Piece piece, Func<Rune, bool> isDelimiter, SplitBehavior behavior, List<Piece> output)
    {
        var text = piece.Text;
        var spans = new List<(int Start, int End, bool Match)>();
        var previous = 0;
        var index = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var length = rune.Utf16SequenceLength;
            if (isDelimiter(rune))
            {
                if (previous != index)
                {
                    spans.Add((previous, index, false));
                }
                spans.Add((index, index + length, true));
                previous = index + length;
            }
            index += length;
        }
        if (previous != text.Length)
        {
            spans.Add((previous, text.Length, false));
        }
        Apply(piece, spans, behavior, output);
    }

    private static void Apply(Piece piece, List<(int Start, int End, bool Match)> spans, SplitBehavior behavior, List<Piece> output)
    {
        var text = piece.Text;
        var pieces = new List<(int Start, int End, bool Remove)>();
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in spans)
                {
                    pieces.Add((s.Start, s.End, false));
                }
                break;
            case SplitBehavior.Removed:
                foreach (var s in spans)
                {
                    pieces.Add((s.Start, s.End, s.Match));
                }
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var previousMatch = false;
                foreach (var s in spans)
                {
                    if (s.Match && !previousMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (pieces[^1].Start, s.End, false);
                    }
                    else
                    {
                        pieces.Add((s.Start, s.End, false));
                    }
                    previousMatch = s.Match;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var nextMatch = false;
                for (var i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.Match && !nextMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (s.Start, pieces[^1].End, false);
                    }
                    else
                    {
                        pieces.Add((s.Start, s.End, false));
                    }
                    nextMatch = s.Match;
                }
                pieces.Reverse();
                break;
            }
            case SplitBehavior.Contiguous:
            {
                var previousMatch = false;
                foreach (var s in spans)
                {
                    if (s.Match == previousMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (pieces[^1].Start, s.End, false);
                    }
                    else
                    {
                        pieces.Add((s.Start, s.End, false));
                    }
                    previousMatch = s.Match;
                }
                break;
            }
        }
        foreach (var (start, end, remove) in pieces)
        {
            if (!remove && end > start)
            {
                output.Add(new Piece(start == 0 && end == text.Length ? text : text[start..end], piece.AtStart && start == 0));
            }
        }
    }

    /// <summary>Rust's char::is_whitespace (the White_Space property).</summary>
    public static bool IsWhiteSpace(Rune rune) => Rune.IsWhiteSpace(rune);

    /// <summary>BERT's punctuation: ASCII punctuation or any Unicode P* category.</summary>
    public static bool IsPunctuation(Rune rune)
    {
        if (rune.IsAscii)
        {
            var c = (char)rune.Value;
            return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
        }
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>Rust's char::is_numeric (Nd, Nl, No).</summary>
    public static bool IsNumeric(Rune rune) =>
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>
    /// Unicode regexes' \w (Rust's regex crate and onig): Alphabetic, marks, decimal digits, connector punctuation and the
    /// zero-width (non-)joiner. Alphabetic is approximated by letters, letter numbers and the circled/squared Latin letters.
    /// </summary>
    public static bool IsWordCharacter(Rune rune)
    {
        var value = rune.Value;
        if (value is 0x200C or 0x200D || (value >= 0x24B6 && value <= 0x24E9) || (value >= 0x1F130 && value <= 0x1F189))
        {
            return true;
        }
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.ConnectorPunctuation;
    }

    /// <summary>
    /// Compiles a tokenizer.json regex (Rust's onig syntax) for .NET, failing with a message that names where it came from.
    /// Possessive quantifiers (<c>x?+</c>, <c>x*+</c>, <c>x++</c>, <c>x{n,m}+</c>), which .NET lacks, become atomic groups.
    /// </summary>
    public static Regex Compile(string pattern, string where)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        }
        catch (ArgumentException e)
        {
            var rewritten = PossessiveToAtomic(pattern);
            if (rewritten != pattern)
            {
                try
                {
                    return new Regex(rewritten, RegexOptions.CultureInvariant | RegexOptions.Compiled);
                }
                catch (ArgumentException)
                {
                }
            }
            throw new TokenizerFormatException($"{where}: the regex '{pattern}' is not supported by .NET regular expressions: {e.Message}");
        }
    }

    /// <summary>Rewrites each possessive quantifier as an atomic group around its atom and the plain quantifier.</summary>
    internal static string PossessiveToAtomic(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var groups = new Stack<int>();
        var atomStart = -1;
        var i = 0;
        while (i < pattern.Length)
        {
            var c = pattern[i];
            var start = output.Length;
            switch (c)
            {
                case '\\':
                {
                    var length = 2;
                    if (i + 2 < pattern.Length && pattern[i + 1] is 'p' or 'P' or 'x' && pattern[i + 2] == '{')
                    {
                        var close = pattern.IndexOf('}', i + 2);
                        length = close < 0 ? pattern.Length - i : close - i + 1;
                    }
                    length = Math.Min(length, pattern.Length - i);
                    output.Append(pattern, i, length);
                    i += length;
                    atomStart = start;
                    continue;
                }
                case '[':
                {
                    var j = i + 1;
                    if (j < pattern.Length && pattern[j] == '^')
                    {
                        j++;
                    }
                    if (j < pattern.Length && pattern[j] == ']')
                    {
                        j++;
                    }
                    var depth = 1;
                    while (j < pattern.Length && depth > 0)
                    {
                        if (pattern[j] == '\\')
                        {
                            j += 2;
                            continue;
                        }
                        depth += pattern[j] == '[' ? 1 : pattern[j] == ']' ? -1 : 0;
                        j++;
                    }
                    j = Math.Min(j, pattern.Length);
                    output.Append(pattern, i, j - i);
                    i = j;
                    atomStart = start;
                    continue;
                }
                case '(':
                    groups.Push(start);
                    output.Append(c);
                    i++;
                    atomStart = -1;
                    continue;
                case ')':
                    output.Append(c);
                    i++;
                    atomStart = groups.Count > 0 ? groups.Pop() : -1;
                    continue;
                case '*' or '+' or '?' or '{':
                {
                    var length = 1;
                    if (c == '{')
                    {
                        var close = pattern.IndexOf('}', i);
                        if (close < 0 || !IsCount(pattern.AsSpan(i + 1, close - i - 1)))
                        {
                            output.Append(c);
                            i++;
                            atomStart = start;
                            continue;
                        }
                        length = close - i + 1;
                    }
                    var quantifier = pattern.Substring(i, length);
                    i += length;
                    if (i < pattern.Length && pattern[i] == '+' && atomStart >= 0)
                    {
                        var atom = output.ToString(atomStart, output.Length - atomStart);
                        output.Length = atomStart;
                        output.Append("(?>").Append(atom).Append(quantifier).Append(')');
                        i++;
                    }
                    else
                    {
                        output.Append(quantifier);
                        if (i < pattern.Length && pattern[i] == '?')
                        {
                            output.Append('?');
                            i++;
                        }
                    }
                    atomStart = -1;
                    continue;
                }
                default:
                    output.Append(c);
                    i++;
                    atomStart = c is '|' or '^' or '$' ? -1 : start;
                    continue;
            }
        }
        return output.ToString();
    }

    private static bool IsCount(ReadOnlySpan<char> inside)
    {
        if (inside.IsEmpty)
        {
            return false;
        }
        foreach (var c in inside)
        {
            if (!char.IsAsciiDigit(c) && c != ',')
            {
                return false;
            }
        }
        return char.IsAsciiDigit(inside[0]) || inside[0] == ',';
    }
}
