using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Tokenization;

/// <summary>A tokenizer.json normalizer: rewrites the text of one piece before pre-tokenization.</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);
}

/// <summary>NFC, NFD, NFKC or NFKD.</summary>
internal sealed class UnicodeNormalizer(NormalizationForm form) : Normalizer
{
    public override string Normalize(string text)
    {
        try
        {
            return text.IsNormalized(form) ? text : text.Normalize(form);
        }
        catch (ArgumentException)
        {
            // Lone surrogates cannot be normalized; Rust strings cannot hold them, so there is no reference behaviour.
            return text;
        }
    }
}

/// <summary>Unicode lowercase (full mappings, as Rust's char::to_lowercase).</summary>
internal sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text) => Lower(text);

    public static string Lower(string text)
    {
        var lower = text.ToLowerInvariant();
        // The one full (non 1:1) lowercase mapping: U+0130 becomes "i" + combining dot above.
        return lower.Contains('\u0130') ? lower.Replace("\u0130", "i\u0307") : lower;
    }
}

/// <summary>Strips whitespace from the left and/or right.</summary>
internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text)
    {
        var start = 0;
        var end = text.Length;
        if (left)
        {
            while (start < end && Rune.DecodeFromUtf16(text.AsSpan(start), out var rune, out var n) == System.Buffers.OperationStatus.Done && Rune.IsWhiteSpace(rune))
            {
                start += n;
            }
        }
        if (right)
        {
            while (end > start && Rune.DecodeLastFromUtf16(text.AsSpan(start, end - start), out var rune, out var n) == System.Buffers.OperationStatus.Done && Rune.IsWhiteSpace(rune))
            {
                end -= n;
            }
        }
        return start == 0 && end == text.Length ? text : text[start..end];
    }
}

/// <summary>Removes combining marks (Mn, Mc, Me, as Rust does); it does not decompose first, so it is usually put after NFD.</summary>
internal sealed class StripAccentsNormalizer : Normalizer
{
    public override string Normalize(string text) => Strip(text, allMarks: true);

    /// <summary>
    /// Drops marks: every mark (as Rust's StripAccents, through is_combining_mark) or only non-spacing ones (as its
    /// BertNormalizer, through is_mark_nonspacing).
    /// </summary>
    public static string Strip(string text, bool allMarks)
    {
        StringBuilder? builder = null;
        var index = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var category = Rune.GetUnicodeCategory(rune);
            if (category == UnicodeCategory.NonSpacingMark || (allMarks && category is UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
            {
                builder ??= new StringBuilder(text, 0, index, text.Length);
            }
            else
            {
                builder?.Append(rune.ToString());
            }
            index += rune.Utf16SequenceLength;
        }
        return builder?.ToString() ?? text;
    }
}

/// <summary>Replaces a literal string or every regex match with <c>content</c>.</summary>
internal sealed class ReplaceNormalizer(string? literal, Regex? regex, string content) : Normalizer
{
    public override string Normalize(string text) => Apply(text, literal, regex, content);

    public static string Apply(string text, string? literal, Regex? regex, string content)
    {
        if (literal is not null)
        {
            return literal.Length == 0 ? text : text.Replace(literal, content, StringComparison.Ordinal);
        }
        var matches = TextSplits.Matches(regex!, text);
        if (matches.Count == 0)
        {
            return text;
        }
        var builder = new StringBuilder(text.Length);
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            builder.Append(text, previous, start - previous).Append(content);
            previous = end;
        }
        return builder.Append(text, previous, text.Length - previous).ToString();
    }
}

/// <summary>Puts <c>prepend</c> in front of non-empty text.</summary>
internal sealed class PrependNormalizer(string prepend) : Normalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prepend + text;
}

/// <summary>Maps each UTF-8 byte to its GPT-2 character, like the ByteLevel pre-tokenizer does.</summary>
internal sealed class ByteLevelNormalizer : Normalizer
{
    public override string Normalize(string text) => ByteLevelAlphabet.Encode(text);
}

/// <summary>BERT's normalizer: clean_text, handle_chinese_chars, strip_accents (null follows lowercase), lowercase.</summary>
internal sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool? stripAccents, bool lowercase) : Normalizer
{
    public override string Normalize(string text)
    {
        if (cleanText || handleChineseChars)
        {
            var builder = new StringBuilder(text.Length);
            foreach (var rune in text.EnumerateRunes())
            {
                if (cleanText)
                {
                    if (rune.Value == 0 || rune.Value == 0xFFFD || IsControl(rune))
                    {
                        continue;
                    }
                    if (rune.Value is '\t' or '\n' or '\r' || Rune.IsWhiteSpace(rune))
                    {
                        builder.Append(' ');
                        continue;
                    }
                }
                if (handleChineseChars && IsChinese(rune.Value))
                {
                    builder.Append(' ').Append(rune.ToString()).Append(' ');
                }
                else
                {
                    builder.Append(rune.ToString());
                }
            }
            text = builder.ToString();
        }
        if (stripAccents ?? lowercase)
        {
            text = StripAccentsNormalizer.Strip(new UnicodeNormalizer(NormalizationForm.FormD).Normalize(text), allMarks: false);
        }
        if (lowercase)
        {
            text = LowercaseNormalizer.Lower(text);
        }
        return text;
    }

    private static bool IsControl(Rune rune)
    {
        if (rune.Value is '\t' or '\n' or '\r')
        {
            return false;
        }
        // Rust's unicode_categories is_other: Cc, Cf, Co (Cs cannot occur); unassigned code points are kept.
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse;
    }

    private static bool IsChinese(int c) =>
        (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F)
        || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/// <summary>Normalizers applied in order.</summary>
internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> steps) : Normalizer
{
    public override string Normalize(string text)
    {
        foreach (var step in steps)
        {
            text = step.Normalize(text);
        }
        return text;
    }
}

/// <summary>
/// SentencePiece's precompiled character map (the "precompiled_charsmap" of a Precompiled normalizer): a Darts double-array
/// trie over UTF-8 keys whose values index a block of NUL-terminated replacement strings. As spm_precompiled in Rust, each
/// grapheme shorter than 6 bytes is looked up whole first, otherwise (or when absent) each of its characters.
/// </summary>
internal sealed class PrecompiledNormalizer : Normalizer
{
    private readonly uint[] _array;
    private readonly byte[] _normalized;

    public PrecompiledNormalizer(byte[] blob)
    {
        if (blob.Length < 4)
        {
            throw new TokenizerFormatException("the Precompiled normalizer's precompiled_charsmap is too short");
        }
        var trieSize = (int)BitConverter.ToUInt32(blob, 0);
        if (trieSize % 4 != 0 || 4 + trieSize > blob.Length || trieSize == 0)
        {
            throw new TokenizerFormatException($"the Precompiled normalizer's precompiled_charsmap declares a trie of {trieSize} bytes in a blob of {blob.Length}");
        }
        _array = new uint[trieSize / 4];
        for (var i = 0; i < _array.Length; i++)
        {
            _array[i] = BitConverter.ToUInt32(blob, 4 + (4 * i));
        }
        _normalized = blob[(4 + trieSize)..];
    }

    public override string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        var modified = false;
        var graphemes = StringInfo.GetTextElementEnumerator(text);
        while (graphemes.MoveNext())
        {
            var grapheme = (string)graphemes.Current;
            var bytes = Encoding.UTF8.GetBytes(grapheme);
            if (bytes.Length < 6 && Transform(bytes) is { } whole)
            {
                builder.Append(whole);
                modified = true;
                continue;
            }
            foreach (var rune in grapheme.EnumerateRunes())
            {
                var part = rune.ToString();
                if (Transform(Encoding.UTF8.GetBytes(part)) is { } replaced)
                {
                    builder.Append(replaced);
                    modified = true;
                }
                else
                {
                    builder.Append(part);
                }
            }
        }
        return modified ? builder.ToString() : text;
    }

    private string? Transform(byte[] key)
    {
        var first = -1;
        var nodePos = 0;
        var unit = At(nodePos);
        nodePos ^= Offset(unit);
        foreach (var c in key)
        {
            if (c == 0)
            {
                break;
            }
            nodePos ^= c;
            unit = At(nodePos);
            if (unit is null || Label(unit.Value) != c)
            {
                break;
            }
            nodePos ^= Offset(unit.Value);
            if (((unit.Value >> 8) & 1) == 1)
            {
                first = (int)(At(nodePos)!.Value & 0x7FFFFFFFu);
                break;
            }
        }
        if (first < 0 || first >= _normalized.Length)
        {
            return null;
        }
        var end = Array.IndexOf(_normalized, (byte)0, first);
        return Encoding.UTF8.GetString(_normalized, first, (end < 0 ? _normalized.Length : end) - first);
    }

    private uint? At(int position) => (uint)position < (uint)_array.Length ? _array[position] : null;

    private static int Offset(uint? unit) => unit is { } u ? (int)((u >> 10) << (int)((u & (1u << 9)) >> 6)) : 0;

    private static uint Label(uint unit) => unit & ((1u << 31) | 0xFF);
}
